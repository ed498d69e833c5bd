"""Probe: prompts a model's chat template refuses (a system turn for a Gemma- or Mistral-like
template, which raise like the real ones) are refused before any model loads, naming a refused
prompt and how many there are.

Before: PPO trained and then failed when it first formatted such a prompt (in the probe: after its
last iteration, sampling the final examples, so the trained model was thrown away) with a bare
"FormattingError: ..."; RLOO/GRPO failed mid-training inside TRL with a raw jinja TemplateError;
DPO and reward runs failed up front but without saying which of their rows it was.
"""

from __future__ import annotations

import pytest

from tests.training.conftest import runner_config, write_jsonl
from training.runners.protocol import DataError

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

SYSTEM = "Always answer in French, please."


def _rows(n: int = 6, *, system_at: int = 3) -> list[dict]:
    rows = []
    for i in range(n):
        prompt = [{"role": "user", "content": f"Question {i}?"}]
        if i == system_at:
            prompt = [{"role": "system", "content": SYSTEM}, *prompt]
        rows.append(
            {
                "prompt": prompt,
                "chosen": [{"role": "assistant", "content": f"A good answer {i}."}],
                "rejected": [{"role": "assistant", "content": "No."}],
            }
        )
    return rows


@pytest.fixture
def no_models(monkeypatch):
    # imported first: a runner module imported while another's loader is patched would keep the patch
    from training.runners import dpo, ppo, reward, rl  # noqa: F401

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the prompts were checked")

    for target in (
        "training.runners.dpo.load_causal_lm",
        "training.runners.ppo.load_causal_lm",
        "training.runners.rl.load_causal_lm",
        "training.runners.reward.load_reward_model",
        "training.runners.rl.load_reward_model",
        "training.runners.ppo.load_reward_model",
    ):
        monkeypatch.setattr(target, refuse)


def _assert_names_the_prompt(err: pytest.ExceptionInfo, role: str) -> None:
    message = str(err.value.message)
    assert "System role not supported" in message or "roles must alternate" in message, message
    assert SYSTEM in message and "1 of 6" in message and f"{role} model" in message, message


@pytest.mark.parametrize("kind", ["ppo", "grpo", "rloo"])
@pytest.mark.parametrize("name", ["gemma", "mistral"])
def test_rl_refuses_prompts_the_policy_template_refuses(zoo_model, tmp_path, no_models, kind, name):
    from training.runners import ppo, rl

    base = zoo_model(name)
    values = {"reward_model": zoo_model("qwen"), "max_steps": 4, "eval_fraction": 0}
    if kind == "ppo":
        values.update(rollout_batch_size=2, max_new_tokens=4, ppo_epochs=1)
    else:
        values.update(num_generations=2, max_completion_length=4)
    cfg = runner_config(kind, base, write_jsonl(tmp_path / "d.jsonl", _rows()), tmp_path / "out", **values)
    with pytest.raises(DataError) as err:
        ppo.run(cfg) if kind == "ppo" else rl.run(kind, cfg)
    _assert_names_the_prompt(err, "policy")
    assert not (tmp_path / "out").exists()


def test_ppo_refuses_prompts_the_reward_template_refuses(zoo_model, tmp_path, no_models):
    from training.runners import ppo

    cfg = runner_config(
        "ppo", zoo_model("qwen"), write_jsonl(tmp_path / "d.jsonl", _rows()), tmp_path / "out",
        reward_model=zoo_model("gemma"), max_steps=1, rollout_batch_size=2, max_new_tokens=4, ppo_epochs=1,
        eval_fraction=0,
    )  # fmt: skip
    with pytest.raises(DataError) as err:
        ppo.run(cfg)
    _assert_names_the_prompt(err, "reward")


@pytest.mark.parametrize("kind", ["dpo", "reward"])
def test_pair_runs_name_the_prompt_the_template_refuses(zoo_model, tmp_path, no_models, kind):
    from training.runners import dpo, reward

    cfg = runner_config(
        kind, zoo_model("gemma"), write_jsonl(tmp_path / "d.jsonl", _rows()), tmp_path / "out", max_steps=1,
        eval_fraction=0.2,
    )  # fmt: skip
    with pytest.raises(DataError) as err:
        (dpo if kind == "dpo" else reward).run(cfg)
    _assert_names_the_prompt(err, "base")


def test_prompts_every_template_takes_still_train(zoo_model, tmp_path):
    from training.runners import ppo

    cfg = runner_config(
        "ppo", zoo_model("qwen"), write_jsonl(tmp_path / "d.jsonl", _rows()), tmp_path / "out",
        reward_model=zoo_model("qwen"), max_steps=1, rollout_batch_size=2, max_new_tokens=4, ppo_epochs=1,
        eval_fraction=0,
    )  # fmt: skip
    assert ppo.run(cfg)["iterations"] == 1
