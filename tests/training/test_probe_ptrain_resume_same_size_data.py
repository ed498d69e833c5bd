"""Resuming a checkpoint on another data file with as many rows.

Before: the checkpoint record (``prefhub_checkpoint.json``) knew the data only by its number of
training rows, so ``train reward --dataset other.jsonl --config '{"resume_from": ...}'`` with a file
of as many rows (another export, a file fixed since) went on silently: the restored data position
and the steps left read rows the first run never saw, and the result said it resumed that run.
Now the record carries the training file's SHA-256 and such a run is refused before training,
naming it (for reward, DPO, RLOO/GRPO and PPO alike)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.training.conftest import kept_checkpoint, ppo_kept_checkpoint, preference_file, runner_config
from training.runners import ppo, reward
from training.runners.models import CheckpointMismatch

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

COMMON = {"learning_rate": 1e-3, "max_steps": 2, "eval_fraction": 0, "save_steps": 1, "save_total_limit": 2}


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_a_reward_checkpoint_resumed_on_other_data_of_the_same_size_is_refused(tiny, tmp_path, monkeypatch):
    data = preference_file(tmp_path / "pairs.jsonl", 8, seed=0, conversational=True)
    other = preference_file(tmp_path / "other.jsonl", 8, seed=1, conversational=True)
    first = runner_config("reward", tiny, data, tmp_path / "first", **COMMON)
    folder = kept_checkpoint(reward.run, first, tmp_path, monkeypatch)
    cfg = runner_config("reward", tiny, other, tmp_path / "then", **COMMON, resume_from=str(folder))
    with pytest.raises(
        CheckpointMismatch, match=f"train_sha256 '{_sha256(data)}' there, '{_sha256(other)}' here"
    ):
        reward.run(cfg)
    assert not (tmp_path / "then").exists()
    assert json.loads((folder / "prefhub_checkpoint.json").read_text())["train_sha256"] == _sha256(data)
    # the same file resumes
    again = reward.run(
        runner_config("reward", tiny, data, tmp_path / "again", **COMMON, resume_from=str(folder))
    )
    assert again["resumed_from_step"] == 1


def test_a_ppo_checkpoint_resumed_on_other_prompts_of_the_same_size_is_refused(tiny, tmp_path, monkeypatch):
    _, common, folder = ppo_kept_checkpoint(tiny, tmp_path, monkeypatch)
    other = preference_file(tmp_path / "other.jsonl", 8, seed=1)
    cfg = runner_config("ppo", tiny, other, tmp_path / "then", **common, resume_from=str(folder))
    with pytest.raises(CheckpointMismatch, match="train_sha256"):
        ppo.run(cfg)
    assert not (tmp_path / "then").exists()
