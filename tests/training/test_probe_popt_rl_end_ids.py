"""Probe: RLOO/GRPO sampled past the end-of-turn token that ``missing_eos_penalty`` and
``mask_truncated_completions`` take as a completion's end.

The runner reads a completion up to the first of the end ids the policy declares
(``core.formatting.stop_token_ids``: the tokenizer's EOS, ``generation_config.eos_token_id`` and the
chat template's end-of-turn), and so do PPO and the held-out figures. TRL 1.16 stops sampling, and
tells a finished completion from a cut-off one, by the tokenizer's EOS and
``generation_config.eos_token_id`` alone. For a checkpoint whose template ends turns with a token its
generation_config does not list (a base model shipped with a chat template: Qwen2.5's base models end
turns with ``<|im_end|>`` but list only ``<|endoftext|>``), a completion that ended went on being
sampled and trained on after its end; TRL counted it as cut off (``completions/clipped_ratio`` 1.0),
so ``mask_truncated_completions`` left finished completions out of the loss, while the reward read
them as finished (no ``missing_eos_penalty``). TRL now stops at every end id the runner reads; the
saved policy keeps the generation_config it shipped with."""

from __future__ import annotations

import json

import pytest

from tests.training.conftest import RL_ONE_STEP, preference_file, runner_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def base_with_template(tmp_path_factory):
    """A tiny model whose template ends turns with ``<|end|>`` while its EOS (the only id its
    generation_config lists) is ``<|endoftext|>``, and a 1-step reward model of it."""
    from generation.tiny_model import SPECIAL_TOKENS, build_tiny_model
    from training.runners import reward

    work = tmp_path_factory.mktemp("base")
    path = str(
        build_tiny_model(
            work / "base", special_tokens=[*SPECIAL_TOKENS, "<|endoftext|>"], eos_token="<|endoftext|>"
        )
    )
    data = preference_file(work / "pairs.jsonl", 8, seed=0)
    rm = reward.run(runner_config("reward", path, data, work / "rm", max_steps=1, eval_fraction=0))
    return path, rm["output_dir"]


@pytest.mark.parametrize("kind", ["rloo", "grpo"])
def test_a_completion_ends_at_the_templates_end_of_turn(kind, base_with_template, tmp_path, monkeypatch):
    import torch
    from transformers import GenerationConfig, LlamaForCausalLM

    from core.formatting import stop_token_ids, text_ids
    from training.runners import rl
    from training.runners.models import load_tokenizer

    base, rm = base_with_template
    tok = load_tokenizer(base)
    end, eos = tok.convert_tokens_to_ids("<|end|>"), tok.convert_tokens_to_ids("<|endoftext|>")
    assert tok.eos_token_id == eos and GenerationConfig.from_pretrained(base).eos_token_id == eos
    assert end in stop_token_ids(tok, GenerationConfig.from_pretrained(base))
    word = text_ids(tok, "Yes")[0]

    def generate(self, input_ids=None, attention_mask=None, **kwargs):
        """Every completion: a word, the end of the turn, then what sampling on would add."""
        tail = torch.tensor([word, end, word, word], device=input_ids.device)
        return torch.cat([input_ids, tail.expand(input_ids.shape[0], -1)], dim=1)

    monkeypatch.setattr(LlamaForCausalLM, "generate", generate)
    seen: list[list[int]] = []
    make = rl.reward_function

    def spying(*args, **kwargs):
        score = make(*args, **kwargs)

        def reward_model(prompts, completions, completion_ids=None, **rest):
            seen.extend(list(ids) for ids in completion_ids)
            return score(prompts, completions, completion_ids=completion_ids, **rest)

        return reward_model

    monkeypatch.setattr(rl, "reward_function", spying)
    data = preference_file(tmp_path / "pairs.jsonl", 8, seed=1, conversational=True)
    metrics = tmp_path / "metrics.jsonl"
    ends = {"max_completion_length": 6, "mask_truncated_completions": True, "metrics_file": str(metrics)}
    cfg = runner_config(
        kind, base, data, tmp_path / kind, reward_model=rm, eval_fraction=0, **RL_ONE_STEP, **ends
    )
    rl.run(kind, cfg)
    assert seen and all(ids == [word, end] for ids in seen)
    logged = [json.loads(line) for line in metrics.read_text().splitlines()]
    clipped = [m["completions_clipped_ratio"] for m in logged if "completions_clipped_ratio" in m]
    assert clipped == [0.0]  # no completion taken as cut off: none left out of the loss
    assert GenerationConfig.from_pretrained(cfg.output_dir).eos_token_id == eos  # as shipped
