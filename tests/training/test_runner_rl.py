"""RLOO and GRPO through TRL with a trained reward model as the reward function: a few steps on a
tiny offline model run, log metrics, evaluate held-out reward before/after and save the policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from generation.tiny_model import build_tiny_model
    from training.runners import reward
    from training.runners.configs import config_for

    work = tmp_path_factory.mktemp("rl")
    base = str(build_tiny_model(work / "base"))
    data = work / "pairs.jsonl"
    rows = [{"prompt": f"Question {i}?", "chosen": "Yes.", "rejected": "No, sorry."} for i in range(16)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rm = reward.run(
        config_for(
            "reward",
            {"base_model": base, "dataset_path": str(data), "output_dir": str(work / "rm"), "use_cpu": True,
             "max_steps": 2, "learning_rate": 1e-3, "eval_fraction": 0},
        )
    )  # fmt: skip
    return base, rm["output_dir"], str(data), work


@pytest.mark.parametrize("kind", ["rloo", "grpo"])
def test_rloo_and_grpo_train_against_the_reward_model(models, kind):
    from training.runners import rl
    from training.runners.configs import config_for

    base, rm, data, work = models
    cfg = config_for(
        kind,
        {
            "base_model": base,
            "reward_model": rm,
            "dataset_path": data,
            "output_dir": str(work / f"out-{kind}"),
            "use_cpu": True,
            "max_steps": 2,
            "learning_rate": 1e-3,
            "num_generations": 4,
            "per_device_train_batch_size": 4,
            "max_completion_length": 8,
            "logging_steps": 1,
            "eval_fraction": 0.25,
        },
    )
    metrics = rl.run(kind, cfg)
    assert "eval_reward" in metrics and "eval_before_reward" in metrics
    assert Path(metrics["output_dir"], "model.safetensors").is_file()
