"""A trained policy is saved as its base ships: what the runners change for training alone (a pad
token lent to a family that has none, TRL's ``use_cache`` off and its pad id in the configs) does
not reach the saved tokenizer, ``config.json`` or ``generation_config.json``.

Before: a Mistral-like base (no pad token) came back from DPO, RLOO/GRPO and PPO with its EOS
``</s>`` as the pad token (tokenizer_config, config.json, generation_config.json), so a collator
that masks pad labels would never teach the next round to stop; and every TRL-trained model had
``use_cache: false`` in its config (a plain forward returned no cache). PPO's save kept the configs
but still wrote the borrowed pad into the tokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.training.conftest import runner_config, write_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

PAIRS = [
    ("Is the sky blue?", "Yes, on a clear day it is blue.", "No."),
    ("What is 2+2?", "2+2 is 4.", "Fish."),
    ("Name a colour.", "Red is a colour.", "I will not."),
    ("Say hello.", "Hello! How can I help?", "Go away."),
]


def _data(path: Path) -> str:
    rows = [
        {
            "prompt": [{"role": "user", "content": p}],
            "chosen": [{"role": "assistant", "content": good}],
            "rejected": [{"role": "assistant", "content": bad}],
        }
        for p, good, bad in PAIRS
    ]
    return write_jsonl(path, rows)


def _json(folder: str | Path, name: str) -> dict:
    return json.loads((Path(folder) / name).read_text())


def _assert_shipped_as_base(base: str, out: str) -> None:
    from transformers import AutoTokenizer

    shipped, saved = AutoTokenizer.from_pretrained(base), AutoTokenizer.from_pretrained(out)
    for attr in ("bos_token", "eos_token", "pad_token", "unk_token", "chat_template"):
        assert getattr(saved, attr) == getattr(shipped, attr), attr
    assert saved.get_vocab() == shipped.get_vocab()
    base_cfg, out_cfg = _json(base, "config.json"), _json(out, "config.json")
    for key in ("pad_token_id", "bos_token_id", "eos_token_id", "use_cache"):
        assert out_cfg.get(key) == base_cfg.get(key), key
    base_gen, out_gen = _json(base, "generation_config.json"), _json(out, "generation_config.json")
    base_gen.pop("transformers_version", None)
    out_gen.pop("transformers_version", None)
    assert out_gen == base_gen


@pytest.mark.parametrize("name", ["mistral", "qwen"])
def test_dpo_saves_the_policy_as_its_base_ships(zoo_model, tmp_path, name):
    from training.runners import dpo

    base = zoo_model(name)
    cfg = runner_config(
        "dpo", base, _data(tmp_path / "pairs.jsonl"), tmp_path / "dpo", max_steps=1, eval_fraction=0
    )
    dpo.run(cfg)
    _assert_shipped_as_base(base, str(tmp_path / "dpo"))


def test_dpo_lora_saves_the_merged_policy_as_its_base_ships(zoo_model, tmp_path):
    from training.runners import dpo

    base = zoo_model("mistral")
    cfg = runner_config(
        "dpo", base, _data(tmp_path / "pairs.jsonl"), tmp_path / "dpo", max_steps=1, eval_fraction=0,
        use_lora=True,
    )  # fmt: skip
    dpo.run(cfg)
    _assert_shipped_as_base(base, str(tmp_path / "dpo"))


@pytest.mark.parametrize("kind", ["grpo", "rloo"])
def test_rl_saves_the_policy_as_its_base_ships(zoo_model, tmp_path, kind):
    from training.runners import rl

    base = zoo_model("mistral")
    cfg = runner_config(
        kind, base, _data(tmp_path / "pairs.jsonl"), tmp_path / kind, reward_model=base, max_steps=1,
        num_generations=2, max_completion_length=4, eval_fraction=0,
    )  # fmt: skip
    rl.run(kind, cfg)
    _assert_shipped_as_base(base, str(tmp_path / kind))


def test_ppo_saves_the_policy_as_its_base_ships(zoo_model, tmp_path):
    from training.runners import ppo

    base = zoo_model("mistral")
    cfg = runner_config(
        "ppo", base, _data(tmp_path / "pairs.jsonl"), tmp_path / "ppo", reward_model=base, max_steps=1,
        rollout_batch_size=2, max_new_tokens=4, ppo_epochs=1, eval_fraction=0,
    )  # fmt: skip
    ppo.run(cfg)
    _assert_shipped_as_base(base, str(tmp_path / "ppo"))


def test_the_saved_policy_trains_and_generates_again(zoo_model, tmp_path):
    """The next round: the saved Mistral-like policy (no pad token, as shipped) trains again and
    generates through the transformers backend, padding with its EOS there as before."""
    from generation.backends.base import SamplingParams
    from generation.backends.transformers import build
    from training.runners import dpo

    base = zoo_model("mistral")
    data = _data(tmp_path / "pairs.jsonl")
    first = runner_config("dpo", base, data, tmp_path / "r1", max_steps=1, eval_fraction=0)
    dpo.run(first)
    second = runner_config("dpo", str(tmp_path / "r1"), data, tmp_path / "r2", max_steps=1, eval_fraction=0)
    dpo.run(second)
    _assert_shipped_as_base(base, str(tmp_path / "r2"))
    backend = build(str(tmp_path / "r2"), {"batch_size": 4})
    assert backend.pad_id == backend.tokenizer.eos_token_id
    convs = [[{"role": "user", "content": "Hi?"}], [{"role": "user", "content": "Say something long."}]]
    params = SamplingParams(temperature=1.0, max_new_tokens=5, seed=3, n=2)
    first_gen, again = backend.generate(convs, params), backend.generate(convs, params)
    assert [[g.text for g in r] for r in first_gen] == [[g.text for g in r] for r in again]
