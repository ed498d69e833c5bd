"""Probe: ``lora_dropout`` of reward and DPO runs had no effect.

TRL 1.16's ``RewardTrainer`` and ``DPOTrainer`` wrap the model in its LoRA adapters
(``get_peft_model``) and only then, with ``disable_dropout`` (on by default), set the ``p`` of every
``nn.Dropout`` in the model to 0: the adapters' own dropout modules included. Two LoRA runs with
``lora_dropout`` 0 and 0.5 logged the very same losses (reward: 0.6540 and 0.6540; DPO: 0.6362 and
0.6362). The runners now put the adapters' dropout back to ``lora_dropout`` once the trainer is built
(the base model's own dropout stays off, as TRL has it)."""

from __future__ import annotations

import pytest

from tests.training.conftest import preference_file, runner_config
from training.runners import dpo, reward

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def _train_loss(kind: str, tiny: str, data: str, out, lora_dropout: float) -> float:
    cfg = runner_config(
        kind,
        tiny,
        data,
        out,
        max_steps=3,
        eval_fraction=0,
        use_lora=True,
        lora_dropout=lora_dropout,
        learning_rate=1e-2,
        seed=3,
    )
    return (reward if kind == "reward" else dpo).run(cfg)["train_loss"]


@pytest.mark.parametrize("kind", ["reward", "dpo"])
def test_lora_dropout_changes_what_a_lora_run_trains(kind, tiny, tmp_path):
    data = preference_file(tmp_path / "pairs.jsonl", 12, seed=1)
    without = _train_loss(kind, tiny, data, tmp_path / "p0", 0.0)
    with_dropout = _train_loss(kind, tiny, data, tmp_path / "p5", 0.5)
    assert abs(with_dropout - without) > 1e-4


def test_the_adapters_dropout_is_lora_dropout_and_the_base_models_stays_off(tiny):
    """What the runners do once the trainer is built (``models.restore_lora_dropout``): each
    adapter's dropout is ``lora_dropout`` again; every other dropout keeps the p TRL gave it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from training.runners.models import restore_lora_dropout

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny),
        LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=0.3, target_modules="all-linear"),
    )
    for module in model.modules():  # what TRL's disable_dropout does
        if isinstance(module, torch.nn.Dropout):
            module.p = 0
    other = torch.nn.Dropout(0.0)
    model.base_model.model.add_module("other_dropout", other)
    restore_lora_dropout(model, 0.3)
    adapters = [m for n, m in model.named_modules() if ".lora_dropout." in n]
    assert adapters and all(isinstance(m, torch.nn.Dropout) and m.p == 0.3 for m in adapters)
    assert other.p == 0.0
