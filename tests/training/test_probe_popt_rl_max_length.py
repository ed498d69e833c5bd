"""Probe: ``max_length`` did not bound what RLOO/GRPO trained on.

``max_length`` is prompt + response tokens, a longer prompt losing its beginning; the reward model
and the held-out figures read prompts so cut (``core.formatting.truncate_prompt_ids``, "the one
left-truncation rule of reward inputs, PPO queries and RLOO/GRPO sampling"). But TRL 1.16's RLOO and
GRPO trainers have no prompt limit at all (no ``max_prompt_length`` any more): they tokenised each
whole prompt and sampled and trained on it, so a 200-token prompt with ``max_length`` 64 was sampled
from in full (the policy saw what the reward model never read, and memory had no bound). The runner
now cuts each prompt's ids to ``max_length - max_completion_length`` by that rule before sampling."""

from __future__ import annotations

import pytest

from tests.training.conftest import RL_ONE_STEP, runner_config, write_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

MAX_LENGTH, COMPLETION = 48, 8


@pytest.mark.parametrize("kind", ["rloo", "grpo"])
@pytest.mark.parametrize("conversational", [False, True], ids=["plain", "chat"])
def test_rl_prompts_are_cut_to_max_length(
    kind, conversational, tiny, tiny_reward_model, tmp_path, monkeypatch
):
    import trl

    from core.formatting import prompt_ids
    from training.runners import rl
    from training.runners.models import load_tokenizer

    long = "Tell me " + "about the quick brown fox and the lazy dog " * 12 + "please?"
    prompts = [long + f" ({i})" for i in range(4)]
    if conversational:
        prompts = [[{"role": "user", "content": p}] for p in prompts]
    tokenizer = load_tokenizer(tiny)
    assert min(len(prompt_ids(tokenizer, p)) for p in prompts) > MAX_LENGTH  # longer than the whole limit
    data = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": p} for p in prompts])

    trainer = trl.RLOOTrainer if kind == "rloo" else trl.GRPOTrainer
    sampled: list[list[int]] = []
    generate = trainer._generate_single_turn

    def recording(self, prompt_ids, *args, **kwargs):
        sampled.extend(list(ids) for ids in prompt_ids)
        return generate(self, prompt_ids, *args, **kwargs)

    monkeypatch.setattr(trainer, "_generate_single_turn", recording)
    lengths = {"max_length": MAX_LENGTH, "max_completion_length": COMPLETION, "eval_fraction": 0}
    cfg = runner_config(
        kind, tiny, data, tmp_path / kind, reward_model=tiny_reward_model, **RL_ONE_STEP, **lengths
    )
    rl.run(kind, cfg)
    assert sampled
    assert max(len(ids) for ids in sampled) <= MAX_LENGTH - COMPLETION
    # cut from the start of the content: the generation prompt (its end) is kept
    whole = prompt_ids(tokenizer, prompts[0])
    tail = whole[-(MAX_LENGTH - COMPLETION) // 2 :]
    assert any(ids[-len(tail) :] == tail for ids in sampled)
