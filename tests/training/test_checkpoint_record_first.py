"""A checkpoint is never whole without its record.

The defect: the TRL runners wrote ``prefhub_checkpoint.json`` from the trainer's ``on_save``
callback, which runs after transformers has written the checkpoint's ``trainer_state.json`` (what
makes a checkpoint whole). A run stopped between the two (a kill, a cancel, a full disk) left a whole
checkpoint without a record, and a resumption from it was not checked at all: a run with another
seed or other data went on from it silently. Now the record is in the folder before the trainer
writes anything there."""

from __future__ import annotations

import json

import pytest

from tests.training.conftest import preference_file, runner_config
from training.runners import reward
from training.runners.models import CHECKPOINT_RECORD, CheckpointMismatch, checkpoint_step, checkpoints_dir

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


class Stopped(Exception):
    """The process dying the moment the trainer has written a checkpoint."""


def test_a_run_stopped_right_after_a_checkpoint_left_it_recorded(tiny, tmp_path, monkeypatch):
    from transformers.trainer_callback import DefaultFlowCallback

    def stop(self, args, state, control, **kwargs):  # the first on_save callback: before any other
        raise Stopped

    data = preference_file(tmp_path / "pairs.jsonl", 8, seed=0, conversational=True)
    values = {"learning_rate": 1e-3, "max_steps": 4, "eval_fraction": 0, "save_steps": 2}
    monkeypatch.setattr(DefaultFlowCallback, "on_save", stop, raising=False)
    with pytest.raises(Stopped):
        reward.run(runner_config("reward", tiny, data, tmp_path / "rm", **values))
    folder = checkpoints_dir(str(tmp_path / "rm")) / "checkpoint-2"
    assert checkpoint_step(folder) == 2  # whole: trainer_state.json written
    record = json.loads((folder / CHECKPOINT_RECORD).read_text())
    assert record["kind"] == "reward" and record["seed"] == 0
    monkeypatch.undo()
    again = runner_config("reward", tiny, data, tmp_path / "again", **values, seed=7, resume_from=str(folder))
    with pytest.raises(CheckpointMismatch, match="seed 0 there, 7 here"):
        reward.run(again)
