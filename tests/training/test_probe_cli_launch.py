"""Probe: ``train --accelerate-config FILE`` or ``--num-processes N`` without ``--launch``. Before,
both were ignored without a word: the run trained in one process without the named DeepSpeed/FSDP
config (even a missing file) and exited 0. Now each is refused by option before anything is read."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["--accelerate-config", "/nowhere/ds.yaml"], "--accelerate-config"),
        (["--num-processes", "2"], "--num-processes"),
    ],
)
def test_launch_options_without_launch_are_refused(tmp_path, no_training, argv, option):
    with pytest.raises(CommandError, match=rf"^{option}: it is used only with --launch"):
        call_command(
            "train", "reward", "--dataset", str(tmp_path / "d.jsonl"), "--base-model", "tiny",
            "--out", str(tmp_path / "out"), *argv,
        )  # fmt: skip
    assert not (tmp_path / "out").exists()
