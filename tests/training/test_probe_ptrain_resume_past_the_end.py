"""Resuming a checkpoint that is past the last step of the run resuming it.

Before: a run with ``max_steps`` 2 resumed from a checkpoint at step 4 (``train reward --config
'{"max_steps": 2, "resume_from": ".../checkpoint-4"}'``) loaded it, trained nothing, logged "the
checkpoint is the run's last step: nothing left to train" and saved the 4-step model as the
result of a 2-step run (``resumed_from_step`` 4); PPO did the same. Now such a run is refused before
it saves anything, naming the checkpoint's step and the run's last."""

from __future__ import annotations

import pytest

from tests.training.conftest import kept_checkpoint, ppo_kept_checkpoint, preference_file, runner_config
from training.runners import ppo, reward
from training.runners.models import CheckpointMismatch

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

COMMON = {"learning_rate": 1e-3, "eval_fraction": 0, "save_steps": 1, "save_total_limit": 4}


def test_a_reward_run_resumed_from_past_its_last_step_is_refused(tiny, tmp_path, monkeypatch):
    data = preference_file(tmp_path / "pairs.jsonl", 8, seed=0)
    first = runner_config("reward", tiny, data, tmp_path / "first", **COMMON, max_steps=3)
    folder = kept_checkpoint(reward.run, first, tmp_path, monkeypatch, step=3)
    cfg = runner_config(
        "reward", tiny, data, tmp_path / "then", **COMMON, max_steps=2, resume_from=str(folder)
    )
    with pytest.raises(CheckpointMismatch, match="step 3 is past this run's last step, 2"):
        reward.run(cfg)
    assert not (tmp_path / "then").exists()
    # at the run's last step exactly, nothing is left to train and the model is saved
    same = reward.run(
        runner_config("reward", tiny, data, tmp_path / "same", **COMMON, max_steps=3, resume_from=str(folder))
    )
    assert same["resumed_from_step"] == 3 and same["train_loss"] is None


def test_a_ppo_run_resumed_from_past_its_last_step_is_refused(tiny, tmp_path, monkeypatch):
    data, common, folder = ppo_kept_checkpoint(tiny, tmp_path, monkeypatch, step=2, max_steps=3)
    cfg = runner_config(
        "ppo", tiny, data, tmp_path / "then", **{**common, "max_steps": 1}, resume_from=str(folder)
    )
    with pytest.raises(CheckpointMismatch, match="step 2 is past this run's last step, 1"):
        ppo.run(cfg)
    assert not (tmp_path / "then").exists()
