"""Resuming a checkpoint with LoRA switched the other way, or with another LoRA rank.

Before: the checkpoint record (``prefhub_checkpoint.json``) said nothing of LoRA, so a LoRA reward
run's checkpoint resumed by a full run (``train reward --config '{"resume_from": ...}'`` without
``use_lora``) died in transformers with "Can't find a checkpoint index (pytorch_model.bin.index.json
or model.safetensors.index.json)", and a full run's checkpoint resumed with ``use_lora`` loaded no
weight ("missing keys" for every parameter) and died in PyTorch with "loaded state dict contains a
parameter group that doesn't match the size of optimizer's group". Now the record carries
``use_lora`` and ``lora_r`` and the run is refused before training, naming them."""

from __future__ import annotations

import json

import pytest

from tests.training.conftest import preference_file, runner_config
from training.runners import reward
from training.runners.models import CheckpointMismatch, checkpoints_dir

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

COMMON = {"learning_rate": 1e-3, "max_steps": 2, "eval_fraction": 0, "save_steps": 1, "save_total_limit": 2}


def _checkpoint(tiny, tmp_path, monkeypatch, name, **options):
    data = preference_file(tmp_path / "pairs.jsonl", 8, seed=0, conversational=True)
    with monkeypatch.context() as patch:  # a finished run deletes its checkpoints: keep them here
        patch.setattr("training.runners.models.checkpoints_dir", lambda out: tmp_path / f"elsewhere-{name}")
        reward.run(runner_config("reward", tiny, data, tmp_path / name, **COMMON, **options))
    return checkpoints_dir(str(tmp_path / name)) / "checkpoint-1", data


def test_a_lora_checkpoint_records_lora(tiny, tmp_path, monkeypatch):
    folder, _ = _checkpoint(tiny, tmp_path, monkeypatch, "lora", use_lora=True, lora_r=4)
    record = json.loads((folder / "prefhub_checkpoint.json").read_text())
    assert record["use_lora"] is True
    assert record["lora_r"] == 4


def _resume(tiny, data, out, folder, **options):
    """The final metrics of a reward run into ``out`` resumed from the checkpoint ``folder``."""
    return reward.run(runner_config("reward", tiny, data, out, **COMMON, **options, resume_from=str(folder)))


@pytest.mark.parametrize(
    ("first", "then", "named"),
    [
        ({"use_lora": True, "lora_r": 4}, {}, "use_lora True there, False here"),
        ({}, {"use_lora": True}, "use_lora False there, True here"),
        ({"use_lora": True, "lora_r": 4}, {"use_lora": True, "lora_r": 8}, "lora_r 4 there, 8 here"),
    ],
    ids=["lora-then-full", "full-then-lora", "other-rank"],
)
def test_a_checkpoint_resumed_with_other_lora_is_refused_naming_it(
    tiny, tmp_path, monkeypatch, first, then, named
):
    folder, data = _checkpoint(tiny, tmp_path, monkeypatch, "first", **first)
    with pytest.raises(CheckpointMismatch, match=named):
        _resume(tiny, data, tmp_path / "then", folder, **then)
    assert not (tmp_path / "then").exists()


def test_a_lora_checkpoint_resumes_with_the_same_lora(tiny, tmp_path, monkeypatch):
    folder, data = _checkpoint(tiny, tmp_path, monkeypatch, "lora", use_lora=True, lora_r=4)
    final = _resume(tiny, data, tmp_path / "again", folder, use_lora=True, lora_r=4)
    assert final["resumed_from_step"] == 1
    assert (tmp_path / "again").is_dir()
