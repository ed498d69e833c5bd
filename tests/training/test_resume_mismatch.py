"""``resume_from`` a checkpoint that another kind of run, or a run with other batches or data, wrote.

Before: the platform's "Resume" repeats the run's own options, but ``train --config`` (or a hand-edited
config) could name any checkpoint. A DPO run resumed from a reward model's checkpoint died in
PyTorch with "loaded state dict contains a parameter group that doesn't match the size of optimizer's
group"; a reward run resumed with another batch size, or on another data file, went on silently
from a data position that meant other rows. Now every checkpoint carries ``prefhub_checkpoint.json``
(the run's kind and what places its data: batch size, accumulation, seed, number of training rows,
PPO's rollout batch) and a run resumed from one that differs is refused before any training, naming
the differences. A checkpoint written before the record existed resumes as before."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.training.conftest import preference_file, runner_config
from training.runners import dpo, reward
from training.runners.models import CheckpointMismatch, checkpoints_dir

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

COMMON = {"learning_rate": 1e-3, "max_steps": 4, "eval_fraction": 0, "save_steps": 2, "save_total_limit": 2}


@pytest.fixture
def reward_checkpoint(tiny, tmp_path, monkeypatch):
    """A reward run's checkpoint at step 2 (kept as a failed run keeps it) and its data file."""
    data = preference_file(tmp_path / "pairs.jsonl", 16, seed=0, conversational=True)
    with monkeypatch.context() as patch:  # a finished run deletes its checkpoints: keep them here
        patch.setattr("training.runners.models.checkpoints_dir", lambda out: tmp_path / "elsewhere")
        reward.run(runner_config("reward", tiny, data, tmp_path / "rm", **COMMON))
    return checkpoints_dir(str(tmp_path / "rm")) / "checkpoint-2", data


def test_every_checkpoint_records_its_run(reward_checkpoint):
    folder, data = reward_checkpoint
    record = json.loads((folder / "prefhub_checkpoint.json").read_text())
    assert record == {
        "kind": "reward",
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 1,
        "seed": 0,
        "train_rows": 16,
        "learning_rate": 1e-3,
        "lr_scheduler_type": "linear",
        "warmup_steps": 0.0,
        "use_lora": False,
        "lora_r": 16,
        "train_sha256": hashlib.sha256(Path(data).read_bytes()).hexdigest(),
    }


def test_a_dpo_run_from_a_reward_checkpoint_is_refused_naming_both(reward_checkpoint, tiny, tmp_path):
    folder, data = reward_checkpoint
    cfg = runner_config("dpo", tiny, data, tmp_path / "dpo", **COMMON, resume_from=str(folder))
    with pytest.raises(CheckpointMismatch, match=r"a reward run's checkpoint.*this is a dpo run"):
        dpo.run(cfg)
    assert not (tmp_path / "dpo").exists()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"per_device_train_batch_size": 4}, "per_device_train_batch_size 2 there, 4 here"),
        ({"seed": 7}, "seed 0 there, 7 here"),
    ],
)
def test_a_run_with_other_batches_is_refused_naming_the_option(
    reward_checkpoint, tiny, tmp_path, change, named
):
    folder, data = reward_checkpoint
    values = {**COMMON, **change}
    with pytest.raises(CheckpointMismatch, match=named):
        reward.run(runner_config("reward", tiny, data, tmp_path / "again", **values, resume_from=str(folder)))


def test_a_run_on_other_data_is_refused(reward_checkpoint, tiny, tmp_path):
    folder, _ = reward_checkpoint
    more = preference_file(tmp_path / "more.jsonl", 24, seed=1, conversational=True)
    with pytest.raises(CheckpointMismatch, match="train_rows 16 there, 24 here"):
        reward.run(runner_config("reward", tiny, more, tmp_path / "again", **COMMON, resume_from=str(folder)))


def test_a_checkpoint_from_before_the_record_still_resumes(reward_checkpoint, tiny, tmp_path):
    folder, data = reward_checkpoint
    (folder / "prefhub_checkpoint.json").unlink()
    done = reward.run(
        runner_config("reward", tiny, data, tmp_path / "again", **COMMON, resume_from=str(folder))
    )
    assert done["resumed_from_step"] == 2


def test_a_ppo_run_from_a_reward_checkpoint_is_refused(reward_checkpoint, tiny, tmp_path):
    from training.runners import ppo

    folder, data = reward_checkpoint
    cfg = runner_config(
        "ppo", tiny, data, tmp_path / "ppo", reward_model=str(folder), max_steps=2, rollout_batch_size=2,
        mini_batch_size=2, ppo_epochs=1, max_new_tokens=4, eval_fraction=0, resume_from=str(folder),
    )  # fmt: skip
    with pytest.raises(CheckpointMismatch, match=r"a reward run's checkpoint.*this is a ppo run"):
        ppo.run(cfg)


@pytest.mark.parametrize("kind", ["reward", "dpo", "ppo"])
def test_a_mismatched_resume_is_refused_before_any_model_loads(
    reward_checkpoint, tiny, tmp_path, monkeypatch, kind
):
    """Before: the record was checked once the models had loaded and the held-out figures before
    training were logged (a platform run kept those step-0 points after failing)."""
    from training.runners import ppo

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the checkpoint was checked")

    for module in (reward, dpo, ppo):
        for name in ("load_reward_model", "load_causal_lm"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, no_model)
    monkeypatch.setattr(ppo, "PPORunner", no_model)
    folder, data = reward_checkpoint
    log = tmp_path / "metrics.jsonl"
    values = {**COMMON, "resume_from": str(folder), "metrics_file": str(log), "seed": 5}
    if kind == "ppo":
        values = {"reward_model": str(folder), "max_steps": 2, "rollout_batch_size": 2, "mini_batch_size": 2,
                  "ppo_epochs": 1, "max_new_tokens": 4, "eval_fraction": 0, "resume_from": str(folder),
                  "metrics_file": str(log)}  # fmt: skip
    run = {"reward": reward.run, "dpo": dpo.run, "ppo": ppo.run}[kind]
    with pytest.raises(CheckpointMismatch):
        run(runner_config(kind, tiny, data, tmp_path / kind, **values))
    assert not log.exists() or "metrics" not in log.read_text()
