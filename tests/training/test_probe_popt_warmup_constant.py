"""Probe: ``warmup_steps`` with ``lr_scheduler_type`` "constant" was accepted and had no effect.

transformers' ``get_scheduler("constant", ...)`` takes no warmup (it returns ``LambdaLR(lambda _: 1)``
and drops ``num_warmup_steps``): the TRL runners (through ``TrainingArguments``) and PPO
(``PPORunner.set_schedule``) alike stepped at the full rate from the first step. Two reward runs with
the constant schedule and ``warmup_steps`` 0 and 3 logged the very same loss (0.65840 and 0.65840),
while with "linear" they differ (0.65952, 0.65318). The combination is now refused by name;
"constant_with_warmup" is the constant rate after a warmup."""

from __future__ import annotations

import pytest

from training.runners.configs import ConfigError, config_for

BASE = {"base_model": "m", "output_dir": "o"}
SCORED = {**BASE, "reward_model": "r"}


@pytest.mark.parametrize(
    ("kind", "base"),
    [("reward", BASE), ("dpo", BASE), ("ppo", SCORED), ("rloo", SCORED), ("grpo", SCORED)],
)
@pytest.mark.parametrize("warmup", [3, 0.1])
def test_warmup_with_the_constant_schedule_is_refused(kind, base, warmup):
    with pytest.raises(ConfigError, match=r"^warmup_steps .*'constant'.*constant_with_warmup"):
        config_for(kind, {**base, "lr_scheduler_type": "constant", "warmup_steps": warmup})


@pytest.mark.parametrize("kind", ["reward", "ppo"])
def test_constant_without_warmup_and_constant_with_warmup_are_accepted(kind):
    base = SCORED if kind == "ppo" else BASE
    assert config_for(kind, {**base, "lr_scheduler_type": "constant"}).warmup_steps == 0
    cfg = config_for(kind, {**base, "lr_scheduler_type": "constant_with_warmup", "warmup_steps": 3})
    assert cfg.warmup_steps == 3
