"""DPO runner on CPU with a tiny offline model: held-out preference accuracy of the implicit reward
rises above chance and the held-out DPO loss falls; precomputed reference log-probs and LoRA run
and save a full (merged) causal LM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.training.conftest import preference_file
from training.runners import dpo
from training.runners.configs import config_for

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def _cfg(tiny, tmp_path, **extra):
    values = {
        "base_model": tiny,
        "dataset_path": preference_file(tmp_path / "train.jsonl", 48, seed=1, conversational=True),
        "eval_dataset_path": preference_file(tmp_path / "test.jsonl", 16, seed=2, conversational=True),
        "output_dir": str(tmp_path / "dpo"),
        "use_cpu": True,
        "learning_rate": 1e-3,
        "beta": 0.1,
        "num_train_epochs": 2,
        "per_device_train_batch_size": 8,
        "max_length": 64,
        "logging_steps": 2,
    }
    values.update(extra)
    return config_for("dpo", values)


def test_dpo_raises_held_out_preference_accuracy_and_lowers_the_loss(tiny, tmp_path):
    lines = []

    class Capture:
        def write(self, text):
            lines.append(text)

        def flush(self):
            pass

    from training.runners.protocol import Emitter

    metrics = dpo.run(_cfg(tiny, tmp_path), Emitter(stream=Capture()))
    print("DPO:", {k: v for k, v in metrics.items() if k.startswith(("eval", "train"))})
    # Before training the policy is the reference: every implicit reward is 0, the loss log(2).
    assert metrics["eval_before_loss"] == pytest.approx(0.6931, abs=1e-3)
    assert metrics["eval_loss"] < metrics["eval_before_loss"] - 0.1
    assert metrics["eval_accuracy"] >= 0.75  # chance is 0.5
    assert metrics["eval_margin"] > 0
    events = [json.loads(x) for x in "".join(lines).splitlines()]
    assert any(e["event"] == "metrics" and "loss" in e for e in events)
    assert events[-1]["event"] == "final"
    # The chart's held-out points are the figures the run reports (ties half), not TRL's own (ties
    # count 0): the run page said "before training 0.5" beside a step-0 point at 0.
    charted = [
        (e["step"], e["eval_accuracy"]) for e in events if e["event"] == "metrics" and "eval_accuracy" in e
    ]
    assert charted[0] == (0, metrics["eval_before_accuracy"]) and metrics["eval_before_accuracy"] == 0.5
    assert charted[-1][1] == metrics["eval_accuracy"]
    assert all(acc in (metrics["eval_before_accuracy"], metrics["eval_accuracy"]) for _, acc in charted)
    out = Path(metrics["output_dir"])
    assert (out / "model.safetensors").is_file() and not (out / "checkpoints").exists()


def test_dpo_with_precomputed_reference_and_lora_saves_a_merged_model(tiny, tmp_path):
    from transformers import AutoModelForCausalLM

    cfg = _cfg(
        tiny,
        tmp_path,
        precompute_ref_log_probs=True,
        use_lora=True,
        lora_r=4,
        lora_alpha=8,
        learning_rate=5e-3,
        max_steps=4,
        dataset_path=preference_file(tmp_path / "train-std.jsonl", 24, seed=3),
        eval_dataset_path=preference_file(tmp_path / "test-std.jsonl", 8, seed=4),
    )
    metrics = dpo.run(cfg)
    assert metrics["precompute_ref_log_probs"] is True and metrics["lora"] is True
    assert metrics["eval_loss"] < metrics["eval_before_loss"]
    out = Path(metrics["output_dir"])
    assert not (out / "adapter_config.json").exists()  # merged into the base weights
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.model_type == "llama"


def test_merge_lora_false_is_refused_not_silently_merged(tmp_path):
    """The runner always merges LoRA adapters into the saved model (generation loads a full model);
    ``merge_lora`` exists in the config. Before, ``merge_lora: false`` was accepted and the run
    saved a merged model anyway: an option silently ignored, which config_for's refusal of unknown
    keys is there to prevent."""
    from training.runners.configs import ConfigError

    values = {
        "base_model": "m",
        "dataset_path": "d.jsonl",
        "output_dir": str(tmp_path / "o"),
        "use_lora": True,
    }
    assert config_for("dpo", {**values, "merge_lora": True}).merge_lora is True
    with pytest.raises(ConfigError, match="merge_lora"):
        config_for("dpo", {**values, "merge_lora": False})
