"""Probe: every runner option refuses a value it cannot train with, by a ``ConfigError`` naming the
option, before any model is loaded (``config_for`` is what the CLI, the run form, the API and the
runner itself all validate with). Before, ``null`` crashed with a TypeError, NaN/Infinity and
out-of-range values were accepted and failed (or trained nonsense) in the worker."""

from __future__ import annotations

import pytest

from training.runners.configs import ConfigError, config_for

BASE = {"base_model": "m", "output_dir": "o"}
SCORED = {**BASE, "reward_model": "r"}
NAN, INF = float("nan"), float("inf")


def _config(kind: str, **values):
    return config_for(kind, {**(SCORED if kind in ("ppo", "rloo", "grpo") else BASE), **values})


@pytest.mark.parametrize(
    ("kind", "values", "field"),
    [
        # null where the option has no "no value" meaning (before: TypeError, a traceback)
        ("reward", {"learning_rate": None}, "learning_rate"),
        ("reward", {"per_device_train_batch_size": None}, "per_device_train_batch_size"),
        ("ppo", {"temperature": None}, "temperature"),
        ("dpo", {"loss_type": None}, "loss_type"),
        # NaN / Infinity (the CLI's json.loads reads them; 1e400 is Infinity through any JSON parser)
        ("reward", {"learning_rate": NAN}, "learning_rate"),
        ("reward", {"learning_rate": INF}, "learning_rate"),
        ("reward", {"num_train_epochs": NAN}, "num_train_epochs"),
        ("reward", {"weight_decay": NAN}, "weight_decay"),
        ("dpo", {"beta": NAN}, "beta"),
        ("dpo", {"beta": INF}, "beta"),
        ("ppo", {"kl_coef": NAN}, "kl_coef"),
        ("ppo", {"temperature": INF}, "temperature"),
        ("reward", {"center_rewards_coefficient": NAN}, "center_rewards_coefficient"),
        # wrong types for options whose default is null
        ("reward", {"center_rewards_coefficient": "x"}, "center_rewards_coefficient"),
        ("reward", {"bf16": "yes"}, "bf16"),
        ("reward", {"use_cpu": 1}, "use_cpu"),
        # a list where only a string is meaningful
        ("reward", {"lr_scheduler_type": ["linear"]}, "lr_scheduler_type"),
        ("dpo", {"loss_type": ["sigmoid"]}, "loss_type"),
        ("ppo", {"stop_token": ["</s>"]}, "stop_token"),
        ("dpo", {"lora_target_modules": [1, 2]}, "lora_target_modules"),
        ("dpo", {"lora_target_modules": []}, "lora_target_modules"),
        # integers beyond anything trainable (1e300 is an "integer" float)
        ("reward", {"per_device_train_batch_size": 10**30}, "per_device_train_batch_size"),
        ("reward", {"per_device_train_batch_size": 1e300}, "per_device_train_batch_size"),
        ("reward", {"max_steps": 10**30}, "max_steps"),
        ("reward", {"seed": -1}, "seed"),
        ("reward", {"seed": 2**40}, "seed"),
        # out of range
        ("reward", {"per_device_eval_batch_size": 0}, "per_device_eval_batch_size"),
        ("reward", {"logging_steps": 0}, "logging_steps"),
        ("reward", {"max_eval_rows": -5}, "max_eval_rows"),
        ("reward", {"warmup_steps": -1}, "warmup_steps"),
        ("reward", {"weight_decay": -0.1}, "weight_decay"),
        ("reward", {"max_grad_norm": -1}, "max_grad_norm"),
        ("reward", {"lr_scheduler_type": "bogus"}, "lr_scheduler_type"),
        ("reward", {"learning_rate": -1e-5}, "learning_rate"),
        ("reward", {"use_lora": True, "lora_r": 0}, "lora_r"),
        ("reward", {"use_lora": True, "lora_alpha": -1}, "lora_alpha"),
        ("reward", {"use_lora": True, "lora_dropout": 1.5}, "lora_dropout"),
        ("dpo", {"use_lora": True, "lora_r": -4}, "lora_r"),
        ("dpo", {"loss_type": "bogus"}, "loss_type"),
        ("dpo", {"label_smoothing": 2}, "label_smoothing"),
        ("dpo", {"label_smoothing": -0.1}, "label_smoothing"),
        ("ppo", {"kl_coef": -1}, "kl_coef"),
        ("ppo", {"gamma": 2}, "gamma"),
        ("ppo", {"lam": -1}, "lam"),
        ("ppo", {"cliprange": -0.2}, "cliprange"),
        ("ppo", {"cliprange_value": 0}, "cliprange_value"),
        ("ppo", {"vf_coef": -1}, "vf_coef"),
        ("ppo", {"reward_clip": -1}, "reward_clip"),
        ("ppo", {"eval_prompts": -1}, "eval_prompts"),
        ("ppo", {"eval_every": -1}, "eval_every"),
        ("ppo", {"total_episodes": -1}, "total_episodes"),
        ("rloo", {"max_completion_length": 0}, "max_completion_length"),
        ("grpo", {"temperature": 0}, "temperature"),
        ("rloo", {"beta": -1}, "beta"),
    ],
)
def test_an_option_it_cannot_train_with_is_refused_by_name(kind, values, field):
    with pytest.raises(ConfigError) as err:
        _config(kind, **values)
    assert field in str(err.value)


@pytest.mark.parametrize(
    ("kind", "values"),
    [
        # what "null" means for these options: the documented default behaviour
        ("reward", {"bf16": None, "use_cpu": None, "center_rewards_coefficient": None}),
        ("ppo", {"missing_eos_penalty": None}),
        # ints for floats and integral floats for ints, as JSON gives them
        ("reward", {"learning_rate": 1, "per_device_train_batch_size": 4.0, "warmup_steps": 0.1}),
        ("reward", {"lr_scheduler_type": "cosine", "max_grad_norm": 0, "seed": 2**32 - 1}),
        ("reward", {"use_lora": True, "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.0}),
        (
            "dpo",
            {"loss_type": "ipo", "use_lora": True, "lora_target_modules": ["q_proj"]},
        ),
        ("dpo", {"loss_type": "robust", "beta": 0.5, "label_smoothing": 0.1}),
        ("dpo", {"loss_type": "sigmoid", "label_smoothing": 0.1}),
        ("ppo", {"kl_coef": 0, "gamma": 1, "lam": 0.95, "vf_coef": 0, "eval_prompts": 0}),
        ("grpo", {"beta": 0.0, "max_completion_length": 8}),
    ],
)
def test_values_that_train_are_kept(kind, values):
    cfg = _config(kind, **values)
    for name, value in values.items():
        assert getattr(cfg, name) == value
