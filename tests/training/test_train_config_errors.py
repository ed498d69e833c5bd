"""``train``'s errors name the option a bad value came from: ``--config`` for a runner option in
the config (before: the bare runner message, "learning_rate must be positive.", with no option), a
flag for what the command sets from its flags."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"learning_rate": -1}, r"^--config: learning_rate must be"),
        ({"num_train_epochs": 0}, r"^--config: num_train_epochs .*must be positive"),
        ({"no_such_option": 1}, r"^--config: .*no_such_option"),
    ],
)
def test_a_bad_runner_option_is_named_by_config(tmp_path, dataset, no_training, config, message):
    with pytest.raises(CommandError, match=message):
        call_command(
            "train", "reward", "--dataset", dataset, "--base-model", "some/model",
            "--out", str(tmp_path / "out"), "--config", json.dumps(config),
        )  # fmt: skip
    assert not (tmp_path / "out").exists()
