"""``num_train_epochs`` is bounded as ``max_steps`` is.

The defect: ``max_steps`` beyond a C int was refused, but ``num_train_epochs`` took any finite
number: 1e308 passed validation, and the trainer then planned ``epochs x batches`` steps (an
overflow in transformers, or a run that never ends until someone cancels it). A value beyond
``MAX_EPOCHS`` is a typo and is refused, naming the option."""

from __future__ import annotations

import pytest

from training.runners.configs import MAX_EPOCHS, ConfigError, config_for

BASE = {"base_model": "m", "dataset_path": "d.jsonl", "output_dir": "o"}


@pytest.mark.parametrize("kind", ["reward", "dpo", "ppo", "rloo", "grpo"])
@pytest.mark.parametrize("epochs", [1e308, MAX_EPOCHS + 1])
def test_absurd_epoch_counts_are_refused(kind, epochs):
    extra = {"reward_model": "r"} if kind in ("ppo", "rloo", "grpo") else {}
    with pytest.raises(ConfigError, match=r"^num_train_epochs must be at most"):
        config_for(kind, {**BASE, **extra, "num_train_epochs": epochs})


def test_the_bound_itself_is_accepted():
    assert config_for("reward", {**BASE, "num_train_epochs": MAX_EPOCHS}).num_train_epochs == MAX_EPOCHS
