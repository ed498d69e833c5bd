"""The transformers backend on the checkpoint zoo: samples come from exactly the recorded
distribution (no setting leaks in from a checkpoint's generation_config), every declared
end-of-turn id stops a response, and the chat template's BOS convention is kept."""

from __future__ import annotations

import pytest

from generation.backends.base import SamplingParams
from generation.zoo import QWEN_GENERATION_DEFAULTS, ZOO
from tests.zoo import zoo_model  # noqa: F401 - fixture

pytestmark = pytest.mark.slow

CONVERSATION = [{"role": "user", "content": "Tell me about the sea and the sea and the sea."}]


def _backend(path):
    from generation.backends.transformers import TransformersBackend

    return TransformersBackend(path, batch_size=8)


def _prompt_ids(backend):
    text = backend.tokenizer.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
    return backend.tokenizer(text, add_special_tokens=False)["input_ids"]


def _plain_decode(backend, ids, *, steps, temperature=None, seed=None):
    """softmax(logits / T) sampling (or argmax), step by step, with nothing else applied."""
    import torch

    if seed is not None:
        torch.manual_seed(seed)
    out: list[int] = []
    current = torch.tensor([ids])
    eos = set(backend.eos_ids)
    with torch.inference_mode():
        for _ in range(steps):
            logits = backend.model(input_ids=current).logits[0, -1].float()
            if temperature is None:
                token = int(logits.argmax())
            else:
                probs = torch.softmax(logits / temperature, dim=-1)
                token = int(torch.multinomial(probs[None], num_samples=1)[0, 0])
            if token in eos:
                break
            out.append(token)
            current = torch.cat([current, torch.tensor([[token]])], dim=1)
    return out


def _completion_tokens(backend, params):
    ids = _prompt_ids(backend)
    [gens] = backend.generate([CONVERSATION], params)
    return ids, backend.tokenizer(gens[0].text, add_special_tokens=False)["input_ids"], gens[0]


@pytest.fixture(scope="module")
def qwen_strong(tmp_path_factory):
    """The Qwen-like model with its generation_config defaults made strong enough that a leak
    changes even greedy output (repetition_penalty 3, min_p 0.5)."""
    from generation.zoo import build_zoo_model

    defaults = {**QWEN_GENERATION_DEFAULTS, "repetition_penalty": 3.0, "min_p": 0.5}
    return str(build_zoo_model("qwen", tmp_path_factory.mktemp("qwen-strong"), generation_defaults=defaults))


def test_greedy_has_no_repetition_penalty_when_none_was_recorded(qwen_strong):
    backend = _backend(qwen_strong)
    params = SamplingParams(temperature=0, max_new_tokens=24)
    assert "repetition_penalty" not in params.to_dict()  # nothing recorded: none may be applied
    ids = _prompt_ids(backend)
    [gens] = backend.generate([CONVERSATION], params)
    [again] = backend.generate([CONVERSATION], params)
    expected = _plain_decode(backend, ids, steps=24)
    assert gens[0].completion_tokens == len(expected)
    assert gens[0].text == backend.tokenizer.decode(expected, skip_special_tokens=True)
    assert again[0].text == gens[0].text


def test_sampling_is_plain_softmax_of_logits_over_temperature(qwen_strong):
    backend = _backend(qwen_strong)
    params = SamplingParams(temperature=1.3, top_p=1.0, top_k=None, max_new_tokens=16, seed=1234, n=1)
    ids = _prompt_ids(backend)
    [gens] = backend.generate([CONVERSATION], params)
    expected = _plain_decode(backend, ids, steps=16, temperature=1.3, seed=1234)
    assert gens[0].text == backend.tokenizer.decode(expected, skip_special_tokens=True)


def test_every_sampling_setting_is_passed_explicitly(qwen_strong):
    """What generate() is given leaves nothing for the checkpoint's generation_config to fill."""
    backend = _backend(qwen_strong)
    kwargs = backend.generate_kwargs(SamplingParams(temperature=0.9, top_k=None), max_new=8)
    assert kwargs["repetition_penalty"] == 1.0 and kwargs["min_p"] == 0.0 and kwargs["top_k"] == 0
    assert kwargs["top_p"] == 1.0 and kwargs["temperature"] == 0.9 and kwargs["do_sample"] is True
    gc = backend.model.generation_config
    for key in ("repetition_penalty", "top_k", "top_p", "temperature", "min_p", "do_sample"):
        assert getattr(gc, key) in (None, False), (key, getattr(gc, key))


@pytest.mark.parametrize("name", [name for name, spec in ZOO.items() if spec.chat])
def test_stops_on_every_declared_end_of_turn_and_keeps_bos(zoo_model, name):  # noqa: F811
    from core.formatting import stop_token_ids

    backend = _backend(zoo_model(name))
    declared = set(stop_token_ids(backend.tokenizer, backend.model.generation_config))
    assert declared <= set(backend.eos_ids)
    eot = ZOO[name].end_of_turn
    assert backend.tokenizer.convert_tokens_to_ids(eot) in backend.eos_ids
    ids = _prompt_ids(backend)
    bos = backend.tokenizer.bos_token_id
    if ZOO[name].needs_bos:
        assert ids[0] == bos and ids[1] != bos  # the template's BOS, once
    else:
        assert bos is None or bos not in ids
    # A head that always prefers the end-of-turn token: the response ends there with finish "stop".
    import torch

    eot_id = backend.tokenizer.convert_tokens_to_ids(eot)
    vocab = backend.model.lm_head.out_features

    class EndOfTurnHead(torch.nn.Module):
        def forward(self, hidden):
            logits = torch.zeros(*hidden.shape[:-1], vocab, dtype=hidden.dtype)
            logits[..., eot_id] = 10.0
            return logits

    backend.model.lm_head = EndOfTurnHead()
    [gens] = backend.generate([CONVERSATION], SamplingParams(temperature=0, max_new_tokens=8))
    assert gens[0].finish_reason == "stop" and gens[0].completion_tokens == 0


@pytest.mark.parametrize("name", ["phi3", "mistral"])
def test_a_row_a_stop_string_ended_is_not_taken_for_an_eos_when_the_pad_is_the_eos(zoo_model, name):  # noqa: F811
    """Phi-3 pads with its EOS (Mistral, without a pad, is padded with it): in a batch, a row that a
    stop string ended while another ran on is padded with that EOS, which is not the model ending
    its reply (native "stop_string", not "eos")."""
    import torch

    backend = _backend(zoo_model(name))
    tok = backend.tokenizer
    assert backend.pad_id == tok.eos_token_id
    stopped = tok("Yes. No", add_special_tokens=False)["input_ids"]
    ran_on = tok("Maybe maybe maybe maybe maybe", add_special_tokens=False)["input_ids"]
    width = len(ran_on)
    assert len(stopped) < width
    rows = [stopped + [backend.pad_id] * (width - len(stopped)), ran_on]

    def generate(input_ids, attention_mask, **kwargs):  # what generate() returns for such a batch
        assert kwargs["stop_strings"] == [" No"] and kwargs["pad_token_id"] == backend.pad_id
        return torch.cat([input_ids, torch.tensor(rows, device=input_ids.device)], dim=1)

    backend.model.generate = generate
    params = SamplingParams(temperature=0, max_new_tokens=width, stop=[" No"])
    [[first], [second]] = backend.generate([CONVERSATION, CONVERSATION], params)
    assert first.text == "Yes." and first.finish_reason == "stop"
    assert first.native_finish_reason == "stop_string"
    assert second.native_finish_reason == "length" and second.completion_tokens == width


def test_the_zoo_pads_on_both_sides_as_real_tokenizers_do(zoo_model):  # noqa: F811
    """Most real tokenizers pad on the right (Llama-3's config sets no side: the library's right),
    Phi-3's on the left; code that assumed one side would pass a zoo of one side only."""
    from transformers import AutoTokenizer

    sides = {name: AutoTokenizer.from_pretrained(zoo_model(name)).padding_side for name in ZOO}
    assert sides == {name: spec.build.get("padding_side", "left") for name, spec in ZOO.items()}
    assert set(sides.values()) == {"left", "right"}
