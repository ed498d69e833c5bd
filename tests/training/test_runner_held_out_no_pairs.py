"""A reward or DPO run whose held-out file has no usable pair (every row a tie, or the file empty)
trains anyway: evaluation is skipped with a line in the log and a note in the final metrics
(``eval_skipped``) saying why, and no held-out figure is reported. Before, such a file failed the
whole run ("No usable preference pairs in test.jsonl: ...") before training."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.conftest import runner_config, write_jsonl
from training.runners import dpo, reward
from training.runners.data import load_pair_splits

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

TRAIN = [
    {"prompt": f"Question {i}?", "chosen": "Yes. Good answer.", "rejected": "No. Bad answer."}
    for i in range(6)
]
TIES = [
    {"prompt": f"Tie {i}?", "chosen": "Same-ish A.", "rejected": "Same-ish B.", "flag": "tie"}
    for i in range(12)
]
NOTE = "held-out split: 0 usable pairs of 12 rows (12 ties); evaluation skipped"


def _files(tmp_path: Path, held_out: list[dict]) -> tuple[str, str]:
    return write_jsonl(tmp_path / "train.jsonl", TRAIN), write_jsonl(tmp_path / "test.jsonl", held_out)


def _no_eval_figures(metrics: dict) -> None:
    figures = [k for k in metrics if k.startswith("eval_") and k != "eval_skipped"]
    assert not figures, f"held-out figures reported without a held-out pair: {figures}"


@pytest.mark.parametrize("runner", [reward, dpo], ids=["reward", "dpo"])
def test_held_out_file_of_ties_only_trains_and_skips_evaluation(runner, tiny, tmp_path, capsys):
    train, test = _files(tmp_path, TIES)
    kind = "reward" if runner is reward else "dpo"
    cfg = runner_config(kind, tiny, train, tmp_path / "out", eval_dataset_path=test, max_steps=1)
    metrics = runner.run(cfg)
    assert metrics["eval_skipped"] == NOTE
    assert metrics["train_pairs"] == 6
    _no_eval_figures(metrics)
    assert (Path(metrics["output_dir"]) / "model.safetensors").is_file()
    assert NOTE in capsys.readouterr().err


def test_empty_held_out_file_is_skipped_not_fatal(tmp_path, capsys):
    train, test = _files(tmp_path, [])
    cfg = runner_config("reward", "unused", train, tmp_path / "out", eval_dataset_path=test)
    data, train_rows, eval_rows = load_pair_splits(cfg)
    assert len(train_rows) == 6 and eval_rows == []
    assert (
        data.eval_skipped
        == "held-out split: 0 usable pairs of 0 rows (the file is empty); evaluation skipped"
    )
    assert data.eval_skipped in capsys.readouterr().err


def test_held_out_file_of_identical_pairs_is_skipped(tmp_path):
    same = [{"prompt": "Q?", "chosen": "A.", "rejected": "A."}] * 3
    train, test = _files(tmp_path, [*same, TIES[0]])
    cfg = runner_config("reward", "unused", train, tmp_path / "out", eval_dataset_path=test)
    data, _, eval_rows = load_pair_splits(cfg)
    assert eval_rows == []
    assert data.eval_skipped == (
        "held-out split: 0 usable pairs of 4 rows (1 tie, 3 with identical chosen and rejected); "
        "evaluation skipped"
    )


def test_held_out_file_with_some_pairs_is_evaluated(tmp_path):
    train, test = _files(tmp_path, [*TIES, TRAIN[0]])
    cfg = runner_config("reward", "unused", train, tmp_path / "out", eval_dataset_path=test)
    data, _, eval_rows = load_pair_splits(cfg)
    assert len(eval_rows) == 1 and data.eval_skipped == ""


def test_dpo_held_out_pairs_all_dropped_by_fitting_skip_evaluation(tiny, tmp_path, capsys):
    long = [{"prompt": f"Long {i}?", "chosen": "word " * 200, "rejected": "other " * 200} for i in range(3)]
    train, test = _files(tmp_path, long)
    cfg = runner_config(
        "dpo", tiny, train, tmp_path / "out", eval_dataset_path=test, max_steps=1, long_replies="drop"
    )
    metrics = dpo.run(cfg)
    note = "held-out split: 0 usable pairs of 3 rows (3 too long for max_length=64); evaluation skipped"
    assert metrics["eval_skipped"] == note and metrics["dropped_too_long_eval"] == 3
    _no_eval_figures(metrics)
    assert note in capsys.readouterr().err
