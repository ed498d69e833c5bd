"""Resuming a checkpoint with another learning rate or schedule.

A checkpoint restores the learning-rate scheduler's state, and with it the learning rate it was
written with (its ``base_lrs``), while the schedule's shape (type, warmup) comes from the resuming
run. Before: the checkpoint record (``prefhub_checkpoint.json``) left them out, so ``train reward
--config '{"learning_rate": 1e-5, "resume_from": ...}'`` of a run written at 1e-3 trained its steps
left at 1e-3 (the log said so, the run's config said 1e-5), silently. Now the record carries
``learning_rate``, ``lr_scheduler_type`` and ``warmup_steps`` (PPO: ``value_learning_rate`` too) and
such a run is refused before training, naming them."""

from __future__ import annotations

import re

import pytest

from tests.training.conftest import kept_checkpoint, preference_file, rl_checkpoint_start, runner_config
from training.runners import ppo, reward
from training.runners.models import CheckpointMismatch

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

COMMON = {"max_steps": 2, "eval_fraction": 0, "save_steps": 1, "save_total_limit": 2}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"learning_rate": 1e-5}, "learning_rate 0.001 there, 1e-05 here"),
        ({"lr_scheduler_type": "constant"}, "lr_scheduler_type 'linear' there, 'constant' here"),
        ({"warmup_steps": 1}, "warmup_steps 0.0 there, 1.0 here"),
    ],
    ids=["learning-rate", "schedule", "warmup"],
)
def test_a_reward_checkpoint_resumed_with_another_schedule_is_refused(
    tiny, tmp_path, monkeypatch, change, named
):
    data = preference_file(tmp_path / "pairs.jsonl", 8, seed=0)
    first = runner_config("reward", tiny, data, tmp_path / "first", **COMMON, learning_rate=1e-3)
    folder = kept_checkpoint(reward.run, first, tmp_path, monkeypatch)
    values = {**COMMON, "learning_rate": 1e-3, **change}
    with pytest.raises(CheckpointMismatch, match=re.escape(named)):
        reward.run(runner_config("reward", tiny, data, tmp_path / "then", **values, resume_from=str(folder)))
    assert not (tmp_path / "then").exists()


def test_a_ppo_checkpoint_resumed_with_another_value_learning_rate_is_refused(tiny, tmp_path, monkeypatch):
    data, common = rl_checkpoint_start(tiny, tmp_path)
    common.update(rollout_batch_size=2, mini_batch_size=2, ppo_epochs=1, max_new_tokens=4, max_steps=3)
    folder = kept_checkpoint(
        ppo.run, runner_config("ppo", tiny, data, tmp_path / "first", **common), tmp_path, monkeypatch
    )
    cfg = runner_config(
        "ppo", tiny, data, tmp_path / "then", **common, value_learning_rate=1e-3, resume_from=str(folder)
    )
    with pytest.raises(CheckpointMismatch, match=re.escape("value_learning_rate 1e-05 there, 0.001 here")):
        ppo.run(cfg)
    assert not (tmp_path / "then").exists()
