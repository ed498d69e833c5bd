"""Probe: RLOO/GRPO with ``num_generations`` that does not divide the completions sampled per round
(``per_device_train_batch_size x gradient_accumulation_steps x processes``). Before, the runner
loaded the prompts, the tokenizers, the reward model and the policy and scored the held-out prompts
before TRL refused it ("generation_batch_size (8) must be divisible by num_generations (3)", an
option the platform does not have). Now the runner refuses it first, naming num_generations."""

from __future__ import annotations

import pytest

from training.runners.configs import ConfigError, config_for

BASE = {"base_model": "m", "output_dir": "o", "reward_model": "r", "dataset_path": "/nowhere.jsonl"}


@pytest.mark.parametrize("kind", ["rloo", "grpo"])
def test_the_runner_refuses_groups_that_do_not_divide_before_reading_anything(kind, monkeypatch):
    from training.runners import rl

    def nothing(*args, **kwargs):
        raise AssertionError("data or a model was loaded")

    monkeypatch.setattr(rl, "load_prompt_splits", nothing)
    monkeypatch.setattr(rl, "load_tokenizer", nothing)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    cfg = config_for(kind, {**BASE, "per_device_train_batch_size": 8, "num_generations": 3})
    with pytest.raises(ConfigError, match=r"num_generations \(3\) must divide .* = 8"):
        rl.run(kind, cfg)


def test_more_processes_can_make_the_groups_divide(monkeypatch):
    cfg = config_for("grpo", {**BASE, "per_device_train_batch_size": 2, "num_generations": 4})
    with pytest.raises(ConfigError, match="= 2"):
        cfg.check_world_size(1)
    cfg.check_world_size(2)  # 2 x 1 x 2 = 4: one group per round


def test_the_refusal_reads_as_a_config_error_on_the_run_page():
    from training.runners.protocol import describe_failure

    assert describe_failure(ConfigError("num_generations (3) must divide ...")) == (
        "config",
        "Bad config: num_generations (3) must divide ...",
    )
