"""The per-role environment files (static checks; `make envs` resolves them against the index)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("check_envs", ROOT / "scripts" / "check_envs.py")
check_envs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_envs)


def pins(role: str) -> dict[str, str]:
    return check_envs.pins(ROOT / check_envs.ENVIRONMENTS[role][0])


def test_every_environment_pins_its_role():
    web, train, gen, serve = pins("web"), pins("gpu-train"), pins("generation"), pins("vllm-serve")
    for name in ("django", "celery", "torch", "transformers", "trl", "peft", "accelerate"):
        assert name in web, name
    # training: the web pins (a model trained there loads on the web machines) plus DeepSpeed
    assert {k: v for k, v in train.items() if k in web} == web and "deepspeed" in train
    # generation: vLLM and the versions it requires, the platform, and no TRL/PEFT/DeepSpeed
    assert gen["vllm"] == serve["vllm"] and gen["torch"] == serve["torch"] == "2.14.0"
    assert "django" in gen and not {"trl", "peft", "deepspeed", "accelerate"} & set(gen)
    assert "django" not in serve
    # every requirement line of every file is an exact pin (a range would drift)
    for role, (rel, _forbidden) in check_envs.ENVIRONMENTS.items():
        for line in (ROOT / rel).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            assert not line or line.startswith("-r ") or check_envs.PIN.match(line), (role, line)


def test_default_check_covers_every_environment():
    """CI resolves dev, gpu-train and generation; web and vllm-serve are subsets of two of them."""
    dev, gen = pins("dev"), pins("generation")
    assert pins("web").items() <= dev.items() and pins("vllm-serve").items() <= gen.items()
    assert set(check_envs.DEFAULT) | {"web", "vllm-serve"} == set(check_envs.ENVIRONMENTS)
