"""Probe: a file too small to hold rows out. Documented (``BaseRunConfig.eval_dataset_path``,
``data.split_eval``): with fewer than 4 rows and no eval file nothing is held out, every row is
trained on, and the run reports no held-out (``eval_*``) figures rather than failing or scoring an
empty split."""

from __future__ import annotations

from tests.training.conftest import runner_config, write_jsonl
from training.runners.data import split_eval


def test_fewer_than_four_rows_hold_nothing_out():
    for n in (1, 2, 3):
        rows = [{"i": i} for i in range(n)]
        assert split_eval(rows, eval_rows=None, fraction=0.5, seed=0, limit=100) == (rows, [])
    train, held = split_eval([{"i": i} for i in range(4)], eval_rows=None, fraction=0.01, seed=0, limit=100)
    assert len(train) == 3 and len(held) == 1  # at least one row from 4 on


def test_a_one_row_file_trains_and_reports_no_held_out_figures(tiny, tmp_path, one_thread):
    from training.runners import reward

    data = write_jsonl(tmp_path / "one.jsonl", [{"prompt": "Q?", "chosen": "yes", "rejected": "no"}])
    final = reward.run(runner_config("reward", tiny, data, tmp_path / "out", max_steps=1))
    assert final["train_pairs"] == 1
    assert not [k for k in final if k.startswith("eval_")]
    assert (tmp_path / "out" / "config.json").is_file()
