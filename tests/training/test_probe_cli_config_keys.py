"""Probe: ``train --config`` naming an option the command sets from its own flags. Before,
``{"metrics_file": "m.jsonl"}`` was silently replaced by ``--metrics-file``'s default "" (no metrics
file written), and ``base_model``/``dataset_path``/``output_dir`` silently by ``--base-model``,
``--dataset`` and ``--out``. Now each is refused, naming the flag that sets it."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


@pytest.mark.parametrize(
    ("key", "flag"),
    [
        ("metrics_file", "--metrics-file"),
        ("base_model", "--base-model"),
        ("dataset_path", "--dataset"),
        ("output_dir", "--out"),
    ],
)
def test_config_keys_the_command_sets_are_refused(tmp_path, no_training, key, flag):
    config = json.dumps({key: str(tmp_path / "x")})
    with pytest.raises(CommandError, match=rf"^--config: {key} is given by {flag}"):
        call_command(
            "train", "reward", "--dataset", str(tmp_path / "d.jsonl"), "--base-model", "tiny",
            "--out", str(tmp_path / "out"), "--config", config,
        )  # fmt: skip
