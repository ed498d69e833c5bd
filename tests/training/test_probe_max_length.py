"""Probe: PPO/RLOO/GRPO with ``max_length`` (prompt + response tokens) no longer than the response
budget. Before, ``{"max_length": 16}`` with PPO's default ``max_new_tokens`` of 48 (or RLOO/GRPO's
``max_completion_length`` of 64) was accepted, and every prompt was cut to its last token
(``max(max_length - max_new_tokens, 1)``): the policy trained on prompts it never saw. Now the
config is refused naming both options (so the API and the form answer 400 before queueing)."""

from __future__ import annotations

import pytest

from training.runners.configs import ConfigError, config_for

BASE = {"base_model": "m", "output_dir": "o", "reward_model": "r"}


@pytest.mark.parametrize(
    ("kind", "values", "message"),
    [
        ("ppo", {"max_length": 16}, r"max_length \(16\) must exceed max_new_tokens \(48\)"),
        ("ppo", {"max_length": 32, "max_new_tokens": 32}, r"max_length \(32\) must exceed max_new_tokens"),
        ("rloo", {"max_length": 64}, r"max_length \(64\) must exceed max_completion_length \(64\)"),
        ("grpo", {"max_length": 8, "max_completion_length": 16}, "must exceed max_completion_length"),
    ],
)
def test_a_response_budget_that_leaves_no_prompt_is_refused(kind, values, message):
    with pytest.raises(ConfigError, match=message):
        config_for(kind, {**BASE, **values})


def test_room_for_a_prompt_is_accepted():
    assert config_for("ppo", {**BASE, "max_length": 64, "max_new_tokens": 48}).max_length == 64
    assert config_for("grpo", {**BASE, "max_length": 64, "max_completion_length": 8}).max_length == 64
