"""Which checkpoint a resumed run continues from, when the run that left them was stopped in the
middle of writing one (a cancel's SIGTERM, the SIGKILL after the grace period, a dead machine)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.runners.configs import ConfigError, config_for
from training.runners.models import checkpoint_step, resume_checkpoint


def _checkpoint(folder: Path, step: int, state: str | None) -> Path:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"weights")
    if state is not None:
        (path / "trainer_state.json").write_text(state)
    return path


def _died_before_saving(tiny: str, data: str, out: Path, monkeypatch, **options) -> Path:
    """Train a reward run of ``tiny`` on ``data`` that dies after training, before its model is saved
    (its checkpoints stay); the run's checkpoints folder."""
    from tests.training.conftest import runner_config
    from training.runners import reward
    from training.runners.models import checkpoints_dir

    def died(*args, **kwargs):
        raise RuntimeError("the machine went away")

    with monkeypatch.context() as patch:
        patch.setattr(reward, "save_trained", died)
        with pytest.raises(RuntimeError, match="went away"):
            reward.run(runner_config("reward", tiny, data, out, **options))
    return checkpoints_dir(str(out))


@pytest.mark.parametrize(
    "cut_short",
    ["", '{"global_step": 4, "log_hist', "[]"],
    ids=["empty", "truncated", "not-a-state"],
)
def test_a_checkpoint_whose_trainer_state_was_cut_short_is_not_resumed_from(tmp_path, cut_short):
    """The trainer writes trainer_state.json last, but a process stopped while writing it leaves the
    file empty or cut off: that checkpoint is not whole, and resuming takes the one before it
    (before: it was taken, and every resume of the run failed on reading it)."""
    folder = tmp_path / "run-1.checkpoints"
    whole = _checkpoint(folder, 2, json.dumps({"global_step": 2, "log_history": []}))
    broken = _checkpoint(folder, 4, cut_short)
    assert checkpoint_step(broken) is None
    assert resume_checkpoint(str(folder)) == whole
    base = {"base_model": "m", "dataset_path": "d.jsonl", "output_dir": str(tmp_path / "o")}
    with pytest.raises(ConfigError, match="holds no checkpoint"):
        config_for("reward", {**base, "resume_from": str(broken)})
    assert config_for("reward", {**base, "resume_from": str(folder)}).resume_from == str(folder)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("rows", [8, 4], ids=["mid-epoch", "epoch-end"])
def test_a_run_resumed_from_its_last_steps_checkpoint_trains_no_step_more(tiny, tmp_path, monkeypatch, rows):
    """A run died after its last step's checkpoint (max_steps 2, checkpoint-2), before its model was
    saved: resuming it has nothing left to train and saves the checkpoint's weights. Before: in the
    middle of an epoch (8 rows, batches of 2) the trainer (transformers resumes mid-epoch without
    checking max_steps first) trained a step 3 of 2, moving the weights off the finished run's, and
    reported that step's loss as train_loss; at an epoch's end (4 rows) it trained nothing but
    reported train_loss 0.0 (a zero loss sum over its guard for zero steps). Now no step is trained
    and train_loss is absent (null) in both."""
    from safetensors.torch import load_file

    from tests.training.conftest import preference_file, runner_config
    from training.runners import reward

    data = preference_file(tmp_path / "train.jsonl", rows, seed=0)
    # a constant rate: a step too many would move the weights (linear decays to 0 at the end)
    common = {"learning_rate": 2e-3, "max_steps": 2, "eval_fraction": 0, "save_steps": 2,
              "lr_scheduler_type": "constant"}  # fmt: skip
    kept = _died_before_saving(tiny, data, tmp_path / "first", monkeypatch, **common)
    log = tmp_path / "again.metrics.jsonl"
    done = reward.run(
        runner_config(
            "reward", tiny, data, tmp_path / "again", **common, resume_from=str(kept), metrics_file=str(log)
        )
    )
    assert done["resumed_from_step"] == 2
    steps = [json.loads(line).get("step") for line in log.read_text().splitlines()]
    assert max(steps) == 2, steps
    assert done["train_loss"] is None
    assert json.loads((tmp_path / "again" / "prefhub_run.json").read_text())["metrics"]["train_loss"] is None
    trained = load_file(str(kept / "checkpoint-2" / "model.safetensors"))
    saved = load_file(str(tmp_path / "again" / "model.safetensors"))
    assert trained.keys() == saved.keys() and all((trained[k] == saved[k]).all() for k in trained)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_a_checkpoint_is_not_resumed_by_another_number_of_processes(tiny, tmp_path, monkeypatch):
    """A checkpoint written by 2 processes (rng_state_0.pth, rng_state_1.pth, as transformers names
    them) resumed by 1 (a worker whose PREFHUB_TRAINING_NUM_PROCESSES differs, a CLI run without
    --launch): each optimiser step was 2 processes' batches, so the restored data position and the
    step count mean other rows, and the RNG states are not found. Before: transformers only logged
    "reproducibility is not guaranteed" at info level and the run trained on, unlike the run it
    claimed to continue. Now the run is refused before training, naming both counts."""
    from tests.training.conftest import preference_file, runner_config
    from training.runners import reward
    from training.runners.protocol import RunnerError

    data = preference_file(tmp_path / "train.jsonl", 8, seed=0)
    common = {
        "learning_rate": 2e-3,
        "max_steps": 4,
        "eval_fraction": 0,
        "save_steps": 2,
        "save_total_limit": 2,
    }
    checkpoint = _died_before_saving(tiny, data, tmp_path / "first", monkeypatch, **common) / "checkpoint-2"
    state = checkpoint / "rng_state.pth"
    (checkpoint / "rng_state_1.pth").write_bytes(state.read_bytes())
    state.rename(checkpoint / "rng_state_0.pth")
    log = tmp_path / "again.metrics.jsonl"
    cfg = runner_config(
        "reward", tiny, data, tmp_path / "again", **common, resume_from=str(checkpoint), metrics_file=str(log)
    )
    with pytest.raises(RunnerError, match=r"written by 2 processes.*this run has 1") as refused:
        reward.run(cfg)
    assert refused.value.kind == "config"
    assert not (tmp_path / "again").exists()


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_a_run_resumed_into_its_own_output_reports_the_step_it_resumed_from(tiny, tmp_path, monkeypatch):
    """The command line's way (README): train again into the same output with {"resume_from":
    "<out>.checkpoints"}, the folder the resumed trainer writes its new checkpoints into. Before:
    resumed_from_step was looked up again after training, when that folder's newest checkpoint was
    the one just written, so a run resumed at step 2 said resumed_from_step 4. Now it says 2."""
    from transformers import TrainerCallback

    from tests.training.conftest import preference_file, runner_config
    from training.runners import reward
    from training.runners.models import checkpoints_dir

    data = preference_file(tmp_path / "train.jsonl", 16, seed=0)
    common = {"learning_rate": 2e-3, "max_steps": 4, "eval_fraction": 0, "save_steps": 2}

    class DiesAfterItsFirstCheckpoint(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            raise RuntimeError("the machine went away")

    train = reward.train

    def dying(trainer, cfg, record):
        trainer.add_callback(DiesAfterItsFirstCheckpoint())
        return train(trainer, cfg, record)

    with monkeypatch.context() as patch:
        patch.setattr(reward, "train", dying)
        with pytest.raises(RuntimeError, match="went away"):
            reward.run(runner_config("reward", tiny, data, tmp_path / "out", **common))
    kept = checkpoints_dir(str(tmp_path / "out"))
    assert [p.name for p in kept.glob("checkpoint-*")] == ["checkpoint-2"]
    log = tmp_path / "metrics.jsonl"
    done = reward.run(
        runner_config(
            "reward", tiny, data, tmp_path / "out", **common, resume_from=str(kept), metrics_file=str(log)
        )
    )
    assert [json.loads(line)["step"] for line in log.read_text().splitlines() if '"loss"' in line] == [3, 4]
    assert done["resumed_from_step"] == 2
    assert (
        json.loads((tmp_path / "out" / "prefhub_run.json").read_text())["metrics"]["resumed_from_step"] == 2
    )
