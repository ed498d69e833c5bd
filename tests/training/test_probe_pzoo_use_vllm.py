"""Probe: ``use_vllm: true`` for RLOO/GRPO where vLLM is not installed (the pinned training
environments never include it: README, "Environments").

Before: the run loaded the policy and the reward model, sampled and scored its held-out prompts,
then failed inside TRL with "ImportError: vLLM is not available and `use_vllm` is set to True.
Please install vLLM with `pip install trl[vllm]`" (an error kind the run page shows as a crash).
Now it is refused as a config error naming the option, before anything is loaded.
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.training.conftest import runner_config, write_jsonl
from training.runners.configs import ConfigError
from training.runners.protocol import describe_failure

pytestmark = pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")


@pytest.mark.parametrize("kind", ["grpo", "rloo"])
def test_use_vllm_without_vllm_is_refused_before_anything_loads(tmp_path, monkeypatch, kind):
    from training.runners import rl

    def refuse(*args, **kwargs):
        raise AssertionError("loaded before use_vllm was checked")

    monkeypatch.setattr(rl, "load_tokenizer", refuse)
    monkeypatch.setattr(rl, "load_prompt_splits", refuse)
    data = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Hi?"}])
    cfg = runner_config(
        kind, "tiny", data, tmp_path / "out", reward_model="rm", use_vllm=True, num_generations=2,
        per_device_train_batch_size=2, max_completion_length=4,
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"^use_vllm") as err:
        rl.run(kind, cfg)
    assert describe_failure(err.value)[0] == "config"
    assert "use_vllm to false" in str(err.value)
