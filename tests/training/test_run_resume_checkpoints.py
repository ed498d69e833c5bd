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
