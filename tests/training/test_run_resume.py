"""Resumable training (runner side): checkpoints every ``save_steps`` beside the output, kept by a
failed run, deleted by a finished one, and a run resumed from one ends where an uninterrupted run
ends (weights, optimiser, scheduler, RNG and data position all restored).

Tiny models built offline: reward and DPO (TRL's trainers, two model heads) and PPO (our own loop,
accelerate's saved state)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.training.conftest import preference_file, runner_config
from training.runners import dpo, reward
from training.runners.configs import ConfigError, config_for
from training.runners.models import checkpoints_dir, resume_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    (file,) = sorted(folder.glob("*.safetensors"))
    return load_file(str(file))


def _same_weights(a: Path, b: Path) -> bool:
    import torch

    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def _scored_run_start(tiny: str, tmp_path: Path, rows: int) -> tuple[str, dict]:
    """(a file of ``rows`` preference rows, the options every resumed PPO/RL run here shares: a
    4-step run of ``tiny`` scored by a 2-step reward model of it, checkpointing every 2 steps,
    keeping 2)."""
    data = preference_file(tmp_path / "pairs.jsonl", rows, seed=0)
    rm = reward.run(runner_config("reward", tiny, data, tmp_path / "rm", max_steps=2, eval_fraction=0))
    common = {
        "reward_model": rm["output_dir"],
        "learning_rate": 1e-3,
        "max_steps": 4,
        "eval_fraction": 0,
        "save_steps": 2,
        "save_total_limit": 2,
    }
    return data, common


def _whole_then_resumed(train, kind, base, data, tmp_path, monkeypatch, common, *, loss_key="loss"):
    """Run ``kind`` uninterrupted with ``train`` (its checkpoints kept: a finished run deletes them),
    then a second run resumed from its checkpoint at step 2, as if the first had died after it.
    Returns (the uninterrupted run's final figures, the resumed run's, the steps the resumed run
    trained, the first run's checkpoints folder)."""
    monkeypatch.setattr("training.runners.models.checkpoints_dir", lambda out: Path(out + ".gone"))
    whole = train(runner_config(kind, base, data, tmp_path / "whole", **common))
    monkeypatch.undo()
    saved = checkpoints_dir(str(tmp_path / "whole"))
    log = tmp_path / "resumed.metrics.jsonl"
    resumed = train(
        runner_config(
            kind,
            base,
            data,
            tmp_path / "resumed",
            **common,
            resume_from=str(saved / "checkpoint-2"),
            metrics_file=str(log),
        )
    )
    events = [json.loads(line) for line in log.read_text().splitlines()]
    trained = [e["step"] for e in events if e["event"] == "metrics" and loss_key in e]
    return whole, resumed, trained, saved


RUNNERS = {
    "reward": (reward.run, {"learning_rate": 2e-3}, False),
    "dpo": (dpo.run, {"learning_rate": 1e-3, "beta": 0.1}, True),
}


@pytest.mark.parametrize("kind", sorted(RUNNERS))
def test_a_run_resumed_from_a_checkpoint_ends_where_an_uninterrupted_run_ends(
    kind, tiny, tmp_path, monkeypatch
):
    run, values, conversational = RUNNERS[kind]
    data = preference_file(tmp_path / "train.jsonl", 16, seed=0, conversational=conversational)
    common = {**values, "max_steps": 4, "eval_fraction": 0, "save_steps": 2, "save_total_limit": 2}

    whole, resumed, trained, saved = _whole_then_resumed(run, kind, tiny, data, tmp_path, monkeypatch, common)
    assert sorted(p.name for p in saved.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert "resumed_from_step" not in whole
    assert resumed["resumed_from_step"] == 2
    assert trained == [3, 4]  # only the steps the first run had not checkpointed
    assert not _same_weights(Path(tiny), tmp_path / "whole")  # training moved the weights
    assert _same_weights(tmp_path / "whole", tmp_path / "resumed")
    # A finished run's own checkpoints are gone; the run it resumed from keeps its own.
    assert not checkpoints_dir(str(tmp_path / "resumed")).exists()
    assert saved.is_dir()


def test_a_failed_run_keeps_its_checkpoints_and_a_finished_one_deletes_them(tiny, tmp_path, monkeypatch):
    data = preference_file(tmp_path / "train.jsonl", 16, seed=0)
    common = {"learning_rate": 2e-3, "max_steps": 4, "eval_fraction": 0, "save_steps": 2}

    def fail(*args, **kwargs):
        raise RuntimeError("the disk is full")

    with monkeypatch.context() as patch:
        patch.setattr(reward, "save_trained", fail)  # dies after training, before the model is saved
        with pytest.raises(RuntimeError, match="disk is full"):
            reward.run(runner_config("reward", tiny, data, tmp_path / "failed", **common))
    kept = checkpoints_dir(str(tmp_path / "failed"))
    assert [p.name for p in kept.glob("checkpoint-*")] == ["checkpoint-4"]  # save_total_limit 1: the newest
    assert not (tmp_path / "failed").exists()  # no half model
    assert resume_checkpoint(str(kept)) == kept / "checkpoint-4"

    # Resuming from the folder takes its newest checkpoint: nothing is left to train but the save.
    done = reward.run(
        runner_config("reward", tiny, data, tmp_path / "again", **common, resume_from=str(kept))
    )
    assert done["resumed_from_step"] == 4
    assert json.loads((tmp_path / "again" / "prefhub_run.json").read_text())["kind"] == "reward"
    assert not checkpoints_dir(str(tmp_path / "again")).exists()

    reward.run(runner_config("reward", tiny, data, tmp_path / "plain", **common))
    assert not checkpoints_dir(str(tmp_path / "plain")).exists()


def test_checkpoint_options_are_checked(tmp_path):
    base = {"base_model": "m", "dataset_path": "d.jsonl", "output_dir": str(tmp_path / "o")}
    with pytest.raises(ConfigError, match="save_steps must be >= 0"):
        config_for("reward", {**base, "save_steps": -1})
    with pytest.raises(ConfigError, match="save_total_limit must be positive"):
        config_for("dpo", {**base, "save_steps": 5, "save_total_limit": 0})
    empty = tmp_path / "empty.checkpoints"
    (empty / "checkpoint-3").mkdir(parents=True)  # no trainer_state.json: a checkpoint cut short
    with pytest.raises(ConfigError, match="holds no checkpoint"):
        config_for("reward", {**base, "resume_from": str(empty)})
    (empty / "checkpoint-3" / "trainer_state.json").write_text("{}")
    (empty / "checkpoint-12").mkdir()
    assert resume_checkpoint(str(empty)) == empty / "checkpoint-3"  # the newest whole one


def test_a_ppo_run_resumed_from_a_checkpoint_ends_where_an_uninterrupted_run_ends(
    tiny, tmp_path, monkeypatch
):
    """PPO's own loop: policy, value head, optimiser, schedule, RNG and the place in the shuffled
    prompts all come back, so iterations 3 and 4 sample and step exactly as the first run did."""
    from training.runners import ppo

    data, common = _scored_run_start(tiny, tmp_path, 12)
    common.update(
        rollout_batch_size=4, mini_batch_size=2, ppo_epochs=1, max_new_tokens=6, lr_scheduler_type="linear"
    )
    whole, resumed, trained, saved = _whole_then_resumed(
        ppo.run, "ppo", tiny, data, tmp_path, monkeypatch, common, loss_key="pg_loss"
    )
    assert [p.name for p in saved.glob("checkpoint-*")] == ["checkpoint-2"]  # the last is the model
    assert "resumed_from_step" not in whole
    assert resumed["resumed_from_step"] == 2
    assert trained == [3, 4]
    assert resumed["train_reward_last"] == pytest.approx(whole["train_reward_last"], abs=1e-5)
    assert not _same_weights(Path(tiny), tmp_path / "whole")
    assert _same_weights(tmp_path / "whole", tmp_path / "resumed")


@pytest.mark.parametrize("kind", ["rloo", "grpo"])
def test_an_rl_run_resumed_from_a_checkpoint_ends_where_an_uninterrupted_run_ends(
    kind, tiny, tmp_path, monkeypatch
):
    """RLOO and GRPO (TRL's trainers, sampling completions): the restored RNG samples the same
    completions, so steps 3 and 4 of the resumed run are those of the uninterrupted one."""
    from training.runners import rl

    data, common = _scored_run_start(tiny, tmp_path, 8)
    common.update(num_generations=4, per_device_train_batch_size=4, max_completion_length=6)
    _, resumed, trained, _ = _whole_then_resumed(
        lambda cfg: rl.run(kind, cfg), kind, tiny, data, tmp_path, monkeypatch, common
    )
    assert resumed["resumed_from_step"] == 2
    assert trained == [3, 4]
    assert not _same_weights(Path(tiny), tmp_path / "whole")
    assert _same_weights(tmp_path / "whole", tmp_path / "resumed")
