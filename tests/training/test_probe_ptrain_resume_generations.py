"""Resuming an RLOO/GRPO checkpoint with another ``num_generations``.

TRL's sampler for RLOO and GRPO takes ``per_device_train_batch_size x accumulation / num_generations``
prompts a step (each repeated ``num_generations`` times), so the data position a checkpoint
restores counts prompts of that many a step. Before: the checkpoint record
(``prefhub_checkpoint.json``) left ``num_generations`` out, and a run resumed with another one went
on silently from a position meaning other prompts (4 completions of 1 prompt a step written, 2 of 2
read: the steps left sampled prompts the first run never reached and skipped ones it would have
trained). Now the record carries it and such a run is refused before training, naming it."""

from __future__ import annotations

import json

import pytest

from tests.training.conftest import kept_checkpoint, rl_checkpoint_start, runner_config
from training.runners import rl
from training.runners.models import CheckpointMismatch

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def test_an_rloo_checkpoint_resumed_with_other_generations_is_refused(tiny, tmp_path, monkeypatch):
    data, common = rl_checkpoint_start(tiny, tmp_path)
    common.update(per_device_train_batch_size=4, max_completion_length=4)
    first = runner_config("rloo", tiny, data, tmp_path / "first", **common, num_generations=4)
    folder = kept_checkpoint(lambda cfg: rl.run("rloo", cfg), first, tmp_path, monkeypatch)
    cfg = runner_config(
        "rloo", tiny, data, tmp_path / "then", **common, num_generations=2, resume_from=str(folder)
    )
    with pytest.raises(CheckpointMismatch, match="num_generations 4 there, 2 here"):
        rl.run("rloo", cfg)
    assert not (tmp_path / "then").exists()
    assert json.loads((folder / "prefhub_checkpoint.json").read_text())["num_generations"] == 4
