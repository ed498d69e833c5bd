"""Probe: reward training on pairs longer than ``max_length``. A pair whose chosen and rejected
inputs are the same ids once cut to ``max_length`` (the replies differ only past the cut) teaches
nothing; before, such pairs were trained on silently (loss stuck at log 2, eval margin 0.0), even
when every pair was one. Now they are left out and counted (``dropped_cut_identical_pairs``), and
a file of nothing else is a DataError naming ``max_length`` before the model is loaded."""

from __future__ import annotations

import pytest

from tests.training.conftest import runner_config, write_jsonl
from training.runners.protocol import DataError

LONG = "word " * 120


def test_all_pairs_identical_after_the_cut_is_refused_before_loading_the_model(
    tiny, tmp_path, monkeypatch, one_thread
):
    from training.runners import reward

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(reward, "load_reward_model", no_model)
    rows = [{"prompt": f"Q{i}", "chosen": LONG + "yes", "rejected": LONG + "no"} for i in range(6)]
    data = write_jsonl(tmp_path / "long.jsonl", rows)
    cfg = runner_config("reward", tiny, data, tmp_path / "out", max_length=16, max_steps=1)
    with pytest.raises(DataError, match=r"max_length=16") as err:
        reward.run(cfg)
    assert "5 training pairs" in err.value.message  # 6 rows, 1 held out
    assert not (tmp_path / "out").exists()


def test_pairs_identical_after_the_cut_are_dropped_and_counted(tiny, tmp_path, one_thread):
    from training.runners import reward

    rows = [{"prompt": f"Q{i}", "chosen": LONG + "yes", "rejected": LONG + "no"} for i in range(3)]
    rows += [{"prompt": f"Q{i}", "chosen": "yes", "rejected": "no"} for i in range(3, 6)]
    data = write_jsonl(tmp_path / "mixed.jsonl", rows)
    cfg = runner_config("reward", tiny, data, tmp_path / "out", max_length=16, max_steps=1, eval_fraction=0)
    final = reward.run(cfg)
    assert final["train_pairs"] == 3 and final["dropped_cut_identical_pairs"] == 3
