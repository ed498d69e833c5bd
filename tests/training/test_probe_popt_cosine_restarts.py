"""Probe: ``lr_scheduler_type`` "cosine_with_restarts" restarted nothing.

transformers' hard-restarts schedule restarts ``num_cycles`` times, and a run cannot set
``num_cycles`` (no ``lr_scheduler_kwargs`` option: ``LR_SCHEDULERS`` holds the schedules that need
none), so it ran with transformers' default of one cycle: the rates of 20 steps (2 of warmup) were
those of "cosine", step for step. The name is now refused, pointing to "cosine"."""

from __future__ import annotations

import pytest

from training.runners.configs import LR_SCHEDULERS, ConfigError, config_for

BASE = {"base_model": "m", "output_dir": "o"}


def _rates(name: str) -> list[float]:
    import torch
    from transformers import get_scheduler

    param = torch.nn.Parameter(torch.zeros(1))
    optimiser = torch.optim.SGD([param], lr=1.0)
    schedule = get_scheduler(name, optimiser, num_warmup_steps=2, num_training_steps=20)
    rates = []
    for _ in range(20):
        rates.append(optimiser.param_groups[0]["lr"])
        optimiser.step()
        schedule.step()
    return rates


def test_one_cycle_of_hard_restarts_is_the_cosine_schedule():
    """Why the name is refused: what a run got under it (transformers' defaults) is "cosine"."""
    assert _rates("cosine_with_restarts") == pytest.approx(_rates("cosine"))


@pytest.mark.parametrize("kind", ["reward", "dpo", "rloo"])
def test_cosine_with_restarts_is_refused_by_name(kind):
    base = {**BASE, "reward_model": "r"} if kind == "rloo" else BASE
    with pytest.raises(ConfigError, match=r"^lr_scheduler_type 'cosine_with_restarts' .*'cosine'"):
        config_for(kind, {**base, "lr_scheduler_type": "cosine_with_restarts"})
    assert "cosine_with_restarts" not in LR_SCHEDULERS
    assert config_for(kind, {**base, "lr_scheduler_type": "cosine"}).lr_scheduler_type == "cosine"
