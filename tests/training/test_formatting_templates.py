"""Model-input formatting against the chat templates themselves (``core.formatting``).

1. The ids a reward model is trained and scored on (and PPO/RLOO/GRPO and ``completion_logprobs``
   build on) are what the tokenizer's own chat template renders for the full conversation (prompt +
   assistant reply), less the newline the template puts after the end-of-turn token: no assistant
   header doubled, none lost, one BOS. Covered on every zoo family and on variants whose generation
   prompt adds an empty think block that the rendered history drops (Qwen3-, Gemma-4-style).
2. A prompt longer than its budget loses the start of its content, never its BOS nor its generation
   prompt, by one rule used by reward inputs, the PPO query and RLOO/GRPO held-out sampling alike,
   so the policy is sampled on the prompt the reward model reads.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from core import formatting
from generation.zoo import GEMMA_TEMPLATE, QWEN_TEMPLATE, ZOO

# Qwen3-like (enable_thinking=False): the generation prompt carries an empty think block that the
# rendered history drops.
QWEN_THINK_TEMPLATE = QWEN_TEMPLATE.replace(
    "<|im_start|>assistant\n{% endif %}", "<|im_start|>assistant\n<think>\n\n</think>\n\n{% endif %}"
)

# Gemma-4-like: BOS, no system role, and an empty thought block after the model header of the
# generation prompt only.
GEMMA_THINK_TEMPLATE = GEMMA_TEMPLATE.replace(
    "<start_of_turn>model\n{% endif %}", "<start_of_turn>model\n<thought>\n</thought>\n{% endif %}"
)
assert QWEN_THINK_TEMPLATE != QWEN_TEMPLATE and GEMMA_THINK_TEMPLATE != GEMMA_TEMPLATE

VARIANTS = {  # name: (zoo family, template override)
    "llama3": ("llama3", None),
    "qwen": ("qwen", None),
    "gemma": ("gemma", None),
    "mistral": ("mistral", None),
    "phi3": ("phi3", None),
    "qwen_think": ("qwen", QWEN_THINK_TEMPLATE),
    "gemma_think": ("gemma", GEMMA_THINK_TEMPLATE),
}

SINGLE = [{"role": "user", "content": "Is the sky blue?"}]
MULTI = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Name a colour."},
]
SYSTEM = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}]
CONVERSATIONS = {"single": (SINGLE, "Yes."), "multi": (MULTI, "Red."), "system": (SYSTEM, "Hello.")}

LONG = [
    {"role": "user", "content": "Please explain in detail " + "why the sky is blue and the sea is green " * 4}
]
LONG_MULTI = [
    {"role": "user", "content": "Tell me about the sea " * 4},
    {"role": "assistant", "content": "The sea is large and green " * 3},
    {"role": "user", "content": "Please explain in detail " + "why the sky is blue " * 4},
]


@pytest.fixture(scope="module")
def toks(zoo_model, tmp_path_factory):
    from generation.zoo import build_zoo_model
    from training.runners.models import load_tokenizer

    out = {}
    for name, (family, template) in VARIANTS.items():
        if template is None:
            path = zoo_model(family)
        else:
            path = build_zoo_model(family, tmp_path_factory.mktemp(name), chat_template=template)
        out[name] = load_tokenizer(str(path))
    out["base"] = load_tokenizer(zoo_model("base"))
    return out


def _render(tok, messages, *, generation_prompt: bool) -> list[int]:
    out = tok.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=generation_prompt, return_dict=False
    )
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def _without_trailing_newline(tok, ids: list[int], name: str) -> list[int]:
    """The documented rule: what the template renders after its last end-of-turn token is dropped
    (a newline; Phi-3's newline and EOS)."""
    eot = tok.convert_tokens_to_ids(ZOO[VARIANTS[name][0]].end_of_turn)
    last = len(ids) - 1 - ids[::-1].index(eot)
    return list(ids[: last + 1])


def _supports(name: str, prompt) -> bool:
    return ZOO[VARIANTS[name][0]].system_role or prompt[0]["role"] != "system"


# --- 1. the full conversation, as the template renders it ---------------------------------------------


@pytest.mark.parametrize("conv", list(CONVERSATIONS))
@pytest.mark.parametrize("name", list(VARIANTS))
def test_reward_input_is_the_templates_full_conversation(toks, name, conv):
    tok = toks[name]
    prompt, reply = CONVERSATIONS[conv]
    if not _supports(name, prompt):
        pytest.skip("Gemma has no system role")
    full = [*prompt, {"role": "assistant", "content": reply}]
    expected = _without_trailing_newline(tok, _render(tok, full, generation_prompt=False), name)
    for response in (reply, [{"role": "assistant", "content": reply}]):
        ids = formatting.reward_input_ids(tok, prompt, response, 512)
        assert tok.decode(ids) == tok.decode(expected)
        assert ids == expected
    if ZOO[VARIANTS[name][0]].needs_bos:
        assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id
    else:  # Phi-3 declares a BOS that neither its tokenizer nor its template puts in
        assert tok.bos_token_id is None or tok.bos_token_id not in ids
    assert ids[-1] == tok.convert_tokens_to_ids(ZOO[VARIANTS[name][0]].end_of_turn)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_prompt_and_completion_split_the_full_conversation_at_their_common_prefix(toks, name):
    tok = toks[name]
    full = _without_trailing_newline(
        tok, _render(tok, [*SINGLE, {"role": "assistant", "content": "Yes."}], generation_prompt=False), name
    )
    completion = formatting.completion_ids(tok, SINGLE, "Yes.")
    assert full[len(full) - len(completion) :] == completion
    head = full[: len(full) - len(completion)]
    # the completion starts where the generation prompt and the full conversation part ways
    gen = _render(tok, SINGLE, generation_prompt=True)
    assert gen[: len(head)] == head
    assert len(head) == len(gen) or gen[len(head)] != full[len(head)]
    # the assistant header is in the prompt part, exactly once overall
    text = tok.decode(full)
    header = "<|im_start|>assistant" if "im_start" in text else "<start_of_turn>model"
    if "<|start_header_id|>" in text:
        header = "<|start_header_id|>assistant"
    if "[INST]" in text:  # Mistral: no assistant header; the user turn's close comes once
        header = "[/INST]"
    if "<|user|>" in text:  # Phi-3
        header = "<|assistant|>"
    assert text.count(header) == 1 and header in tok.decode(head)
    assert tok.decode(completion).startswith("Yes.")


# --- 2. one left-truncation rule --------------------------------------------------------------------


def _ppo_runner(tok, max_length: int, max_new_tokens: int):
    from training.runners.ppo import PPORunner

    runner = PPORunner.__new__(PPORunner)
    runner.cfg = SimpleNamespace(max_length=max_length, max_new_tokens=max_new_tokens)
    runner.tokenizer = tok
    runner.device = "cpu"
    tok.padding_side = "left"
    return runner


def _unpadded(query, qmask, i: int) -> list[int]:
    return query[i][qmask[i].bool()].tolist()


def _generation_prompt(tok, prompt) -> list[int]:
    """The generation prompt's own ids: what ``add_generation_prompt`` adds to the rendered prompt
    (Phi-3 renders its EOS instead when not given one: the history then ends with it)."""
    with_gen = _render(tok, prompt, generation_prompt=True)
    without = _render(tok, prompt, generation_prompt=False)
    n = formatting.common_prefix_length(with_gen, without)
    assert without[n:] in ([], [tok.eos_token_id])
    return with_gen[n:]


def _first_turn_header(tok, prompt) -> list[int]:
    """What the template renders before the first message's content (BOS, the turn's header)."""
    a, b = (_render(tok, [{**prompt[0], "content": c}], generation_prompt=False) for c in ("a", "b"))
    return a[: formatting.common_prefix_length(a, b)]


def _reward_prompt_part(tok, prompt, budget: int) -> list[int]:
    """The prompt part of the reward input when the prompt's budget is ``budget`` tokens."""
    completion = formatting.completion_ids(tok, prompt, "Yes.")
    return formatting.reward_input_ids(tok, prompt, "Yes.", budget + len(completion))[:budget]


@pytest.mark.parametrize("prompt", [LONG, LONG_MULTI], ids=["single", "multi"])
@pytest.mark.parametrize("name", list(ZOO))
def test_ppo_query_keeps_bos_and_generation_prompt_and_matches_the_reward_side(toks, name, prompt):
    tok = toks[name]
    if name == "base":
        prompt = formatting.plain_prompt(prompt)
    runner = _ppo_runner(tok, max_length=48, max_new_tokens=16)
    full = formatting.generation_prompt_ids(tok, prompt)
    assert len(full) > 32, "the prompt must be long enough to be cut"
    query, qmask = runner._query_batch([prompt, SINGLE if name != "base" else "Hi?"])
    ids = _unpadded(query, qmask, 0)
    assert len(ids) == 32
    if ZOO[name].needs_bos:
        assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1, tok.decode(ids)
    if name != "base":
        gen = _generation_prompt(tok, prompt) or full[-3:]  # Mistral has none: the prompt's end stays
        assert ids[-len(gen) :] == gen, tok.decode(ids)
        # the first turn's header survives too: the cut is in the content
        assert tok.decode(ids).startswith(tok.decode(_first_turn_header(tok, prompt)))
    else:
        assert ids[-len(full[-3:]) :] == full[-3:]
    # the reward model reads the same prompt for this budget
    assert ids == _reward_prompt_part(tok, prompt, 32), (
        tok.decode(ids),
        tok.decode(_reward_prompt_part(tok, prompt, 32)),
    )
    # a short prompt is untouched
    short = _unpadded(query, qmask, 1)
    assert short == formatting.generation_prompt_ids(tok, SINGLE if name != "base" else "Hi?")


@pytest.mark.parametrize("name", list(ZOO))
def test_rl_held_out_sampling_uses_the_same_truncated_prompt(toks, name, monkeypatch):
    import torch

    from training.runners import rl

    tok = toks[name]
    prompt = LONG if name != "base" else formatting.plain_prompt(LONG)
    seen: list[list[int]] = []

    class Policy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def generate(self, input_ids, attention_mask, **kwargs):
            seen.append(input_ids[0].tolist())
            end = formatting.completion_ids(tok, prompt, "Yes.")[-1:]  # a reply that ended
            reply = torch.tensor([tok("Yes.", add_special_tokens=False)["input_ids"] + end])
            return torch.cat([input_ids, reply], dim=1)

    scored: list[list[list[int]]] = []
    monkeypatch.setattr(
        rl,
        "score_sequences",
        lambda reward, seqs, pad_id, batch_size: scored.append(seqs) or [0.0] * len(seqs),
    )
    cfg = SimpleNamespace(
        seed=0,
        max_length=48,
        max_completion_length=16,
        temperature=1.0,
        missing_eos_penalty=None,
        per_device_eval_batch_size=16,
    )
    out = rl._eval_reward(Policy(), tok, torch.nn.Linear(1, 1), tok, [prompt], cfg)
    assert out == {"reward": 0.0}
    ids = seen[0]
    query, qmask = _ppo_runner(tok, max_length=48, max_new_tokens=16)._query_batch([prompt])
    assert ids == _unpadded(query, qmask, 0), (tok.decode(ids), tok.decode(_unpadded(query, qmask, 0)))
    if ZOO[name].needs_bos:
        assert ids[0] == tok.bos_token_id
    # the reward model reads the prompt the policy answered: same start, same end before the reply
    # (with a reply shorter than max_completion_length it has room for more of the content)
    reward_in, reply = scored[0][0], formatting.completion_ids(tok, prompt, "Yes.")
    assert reward_in[-len(reply) :] == reply and reward_in[0] == ids[0]
    assert reward_in[len(reward_in) - len(reply) - 12 : len(reward_in) - len(reply)] == ids[-12:]


@pytest.mark.parametrize("name", ["qwen_think", "gemma_think"])
def test_truncated_reward_input_of_a_think_template_keeps_one_header(toks, name):
    tok = toks[name]
    ids = formatting.reward_input_ids(tok, LONG, "Yes.", 40)
    text = tok.decode(ids)
    assert len(ids) == 40
    header = "<|im_start|>assistant\n" if name.startswith("qwen") else "<start_of_turn>model\n"
    assert text.count(header) == 1 and text.endswith(
        header + tok.decode(formatting.completion_ids(tok, LONG, "Yes."))
    )
    if tok.bos_token_id is not None:
        assert ids[0] == tok.bos_token_id


def test_truncation_rule_on_tiny_budgets_prefers_bos_then_generation_prompt(toks):
    tok = toks["gemma"]
    ids = formatting.generation_prompt_ids(tok, LONG)
    gen = _generation_prompt(tok, LONG)
    for budget in (1, 2, len(gen), len(gen) + 1, len(gen) + 5):
        cut = formatting.truncate_prompt_ids(tok, LONG, ids, budget)
        assert len(cut) == budget and cut[0] == tok.bos_token_id
        keep = min(len(gen), budget - 1)
        assert cut[len(cut) - keep :] == gen[len(gen) - keep :]
    assert formatting.truncate_prompt_ids(tok, LONG, ids, len(ids)) == ids
    assert formatting.truncate_prompt_ids(tok, LONG, ids, 0) == []


@pytest.mark.parametrize("name", ["llama3", "gemma", "mistral", "base"])
def test_dpo_held_out_log_probs_read_the_sequence_the_reward_side_reads(toks, name):
    """``completion_logprobs`` (DPO's held-out accuracy and margins) scores the completion within
    ``sequence_ids``' sequence: a long prompt keeps its BOS and header (before: a plain left slice
    dropped them, so the figures were computed on a prompt the policy is never given)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from training.services.evaluation import completion_logprobs

    tok = toks[name]
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
        )
    ).eval()  # fmt: skip
    prompt = LONG if tok.chat_template else LONG[0]["content"]
    row = {"prompt": prompt, "chosen": [{"role": "assistant", "content": "Because of scattering."}]}
    if not tok.chat_template:
        row["chosen"] = "Because of scattering."
    seq = formatting.sequence_ids(tok, row["prompt"], row["chosen"], 40)
    n = len(formatting.split_ids(tok, row["prompt"], row["chosen"])[1])
    assert seq[0] == tok.bos_token_id and len(seq) == 40
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([seq])).logits[0, :-1].float(), -1)
    expected = float(logp[torch.arange(len(seq) - 1), torch.tensor(seq[1:])][-n:].sum())
    (got,) = completion_logprobs(model, tok, [row], "chosen", max_length=40)
    assert got == pytest.approx(expected, abs=1e-4)
