"""Probe: LoRA options that contradict ``use_lora``. Before, ``{"lora_r": 8}`` (or ``lora_alpha``,
``lora_dropout``, ``lora_target_modules``) without ``use_lora: true`` was accepted and ignored: the
run fine-tuned every weight while its config read as a LoRA run. Now it is refused by name; the
defaults themselves (the run form shows them, and researchers paste them) are still accepted."""

from __future__ import annotations

import pytest

from training.runners.configs import ConfigError, config_for, documented_defaults

BASE = {"base_model": "m", "output_dir": "o"}


@pytest.mark.parametrize(
    ("kind", "values", "field"),
    [
        ("reward", {"lora_r": 8}, "lora_r"),
        ("reward", {"use_lora": False, "lora_alpha": 64}, "lora_alpha"),
        ("dpo", {"lora_dropout": 0.2}, "lora_dropout"),
        ("dpo", {"lora_target_modules": ["q_proj"]}, "lora_target_modules"),
    ],
)
def test_lora_options_without_lora_are_refused(kind, values, field):
    with pytest.raises(ConfigError, match=rf"^{field} is set .* but use_lora is false"):
        config_for(kind, {**BASE, **values})


@pytest.mark.parametrize("kind", ["reward", "dpo"])
def test_the_pasted_defaults_and_real_lora_configs_are_accepted(kind):
    pasted = {k: v for k, v in documented_defaults(kind).items() if v not in ("", None)}
    config_for(kind, {**pasted, **BASE})
    assert config_for(kind, {**BASE, "use_lora": True, "lora_r": 8}).lora_r == 8
