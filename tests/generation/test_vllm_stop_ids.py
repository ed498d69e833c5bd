"""The vLLM backend stops at every id that ends a response, by the same rule as the transformers
backend (``core.formatting.stop_token_ids``): the tokenizer's EOS, the generation_config's end ids
and the chat template's end-of-turn token.

The case that matters: a checkpoint whose generation_config lists only the EOS, not the end of a
turn (as Llama-3-Instruct's first release did: eos_token_id 128001, no <|eot_id|>). vLLM reads the
generation_config's ids only, so its samples ran on past the end of the turn until max_tokens.
vLLM needs a GPU: this drives the backend through a fake ``vllm`` module over the real tokenizer
of a zoo model built offline."""

from __future__ import annotations

import types

import pytest
from transformers import AutoTokenizer

from generation.backends.base import SamplingParams
from generation.backends.transformers import TransformersBackend
from generation.backends.vllm import VLLMBackend
from generation.zoo import ZOO, build_zoo_model
from tests.generation.test_backend_vllm import install_fake_vllm


class SamplingParamsSeen:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


class TokenizerOnlyLLM:
    def __init__(self, model, **kwargs):
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.llm_engine = types.SimpleNamespace(model_config=types.SimpleNamespace(max_model_len=128))

    def get_tokenizer(self):
        return self.tokenizer


@pytest.fixture
def fake_vllm(monkeypatch):
    install_fake_vllm(monkeypatch, TokenizerOnlyLLM, SamplingParamsSeen)


@pytest.fixture(scope="module")
def llama3_eos_only(tmp_path_factory):
    """Llama-3-like, its generation_config listing only <|end_of_text|>."""
    return build_zoo_model(
        "llama3", tmp_path_factory.mktemp("llama3-eos-only"), eos_token_ids=["<|end_of_text|>"]
    )


def test_the_end_of_turn_stops_vllm_when_the_generation_config_omits_it(fake_vllm, llama3_eos_only):
    backend = VLLMBackend(str(llama3_eos_only))
    tokenizer = backend.tokenizer
    eot = tokenizer.convert_tokens_to_ids("<|eot_id|>")
    eos = tokenizer.convert_tokens_to_ids("<|end_of_text|>")

    sp = backend.sampling_params(SamplingParams(n=2, max_new_tokens=16))

    assert set(sp.stop_token_ids) == {eos, eot}


@pytest.mark.parametrize("family", [name for name, spec in ZOO.items() if spec.chat])
def test_vllm_and_transformers_stop_at_the_same_ids(fake_vllm, zoo_model, family):
    path = zoo_model(family)
    vllm_ids = VLLMBackend(path).sampling_params(SamplingParams()).stop_token_ids
    assert sorted(vllm_ids) == TransformersBackend(path, device="cpu").eos_ids
