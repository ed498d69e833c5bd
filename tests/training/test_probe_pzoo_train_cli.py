"""Probe: ``train``'s errors about the reward model name ``--reward-model``, the option the user gave
(or should give). Before, ``train dpo --reward-model RM`` said "--config: Unknown dpo option(s):
reward_model." with no --config on the line, and ``train ppo`` without one said "--config:
reward_model is required"; now both name --reward-model. A reward_model given in --config is still
taken, and still named as --config's when it is wrong."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


def _train(tmp_path, kind: str, *argv: str) -> None:
    call_command(
        "train", kind, "--dataset", str(tmp_path / "d.jsonl"), "--base-model", "tiny",
        "--out", str(tmp_path / "out"), *argv,
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["reward", "dpo"])
def test_a_reward_model_for_a_run_without_one_names_the_option(tmp_path, no_training, kind):
    with pytest.raises(CommandError, match=r"^--reward-model: .*ppo, rloo and grpo") as err:
        _train(tmp_path, kind, "--reward-model", str(tmp_path))
    assert "--config" not in str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["ppo", "rloo", "grpo"])
def test_a_missing_reward_model_names_the_option(tmp_path, no_training, kind):
    with pytest.raises(CommandError, match=r"^--reward-model: reward_model is required"):
        _train(tmp_path, kind)


def test_a_reward_model_in_the_config_is_still_named_as_the_configs(tmp_path, no_training):
    with pytest.raises(CommandError, match=r"^--config: Unknown dpo option\(s\): reward_model"):
        _train(tmp_path, "dpo", "--config", '{"reward_model": "rm"}')
