"""The vLLM backend against a fake ``vllm`` module (vLLM needs a GPU, which these machines lack).

What is checked: the lazy import and its error, the LLM constructor arguments, the mapping of our
SamplingParams onto vLLM's (n=k in one request per prompt), chat templating into token ids, the
too-long pre-check, and the result shape."""

import sys
import types
from dataclasses import dataclass, field

import pytest

from generation.backends.base import BackendConfigError, PromptError, SamplingParams
from generation.backends.vllm import VLLMBackend, validate_config

CONVERSATION = [{"role": "user", "content": "hi"}]


class FakeTokenizer:
    chat_template = "{{ messages }}"
    eos_token_id = 7

    def apply_chat_template(self, conversation, tokenize=False, add_generation_prompt=True):
        assert add_generation_prompt and not tokenize
        return "".join(f"<{m['role']}>{m['content']}" for m in conversation) + "<assistant>"

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": list(range(len(text)))}


@dataclass
class FakeSamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    max_tokens: int = 16
    seed: int | None = None
    stop: list = field(default_factory=list)
    stop_token_ids: list = field(default_factory=list)


@dataclass
class CompletionOutput:
    text: str
    token_ids: list
    finish_reason: str


@dataclass
class RequestOutput:
    prompt_token_ids: list
    outputs: list


class FakeLLM:
    instances: list = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.calls = []
        self.llm_engine = types.SimpleNamespace(model_config=types.SimpleNamespace(max_model_len=64))
        FakeLLM.instances.append(self)

    def get_tokenizer(self):
        return FakeTokenizer()

    def generate(self, prompts, sampling_params, use_tqdm=True):
        """One SamplingParams for all prompts, or a list of one per prompt (as vLLM takes them)."""
        self.calls.append((prompts, sampling_params))
        per_prompt = (
            sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
        )
        return [
            RequestOutput(
                prompt_token_ids=p["prompt_token_ids"],
                outputs=[
                    CompletionOutput(
                        text=f"sample {i}",
                        token_ids=[1] * (i + 1),
                        finish_reason="length" if i == 0 else "stop",
                    )
                    for i in range(sp.n)
                ],
            )
            for p, sp in zip(prompts, per_prompt, strict=True)
        ]


def install_fake_vllm(monkeypatch, llm, sampling_params) -> types.ModuleType:
    """A ``vllm`` module with these ``LLM`` and ``SamplingParams`` classes, for this test."""
    module = types.ModuleType("vllm")
    module.LLM = llm
    module.SamplingParams = sampling_params
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module


@pytest.fixture
def fake_vllm(monkeypatch):
    FakeLLM.instances = []
    return install_fake_vllm(monkeypatch, FakeLLM, FakeSamplingParams)


def test_missing_vllm_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(BackendConfigError, match="vLLM is not installed"):
        VLLMBackend("some/model")


def test_llm_gets_the_endpoint_settings(fake_vllm):
    VLLMBackend(
        "org/model", dtype="bfloat16", tensor_parallel_size=2, gpu_memory_utilization=0.5, max_model_len=4096
    )
    kwargs = FakeLLM.instances[0].kwargs
    assert kwargs["model"] == "org/model"
    assert kwargs["dtype"] == "bfloat16"
    assert kwargs["tensor_parallel_size"] == 2
    assert kwargs["gpu_memory_utilization"] == 0.5
    assert kwargs["max_model_len"] == 4096


def test_sampling_params_mapping(fake_vllm):
    backend = VLLMBackend("m")
    sp = backend.sampling_params(
        SamplingParams(n=4, temperature=0.7, top_p=0.9, top_k=20, max_new_tokens=33, seed=5, stop=["END"])
    )
    assert (sp.n, sp.temperature, sp.top_p, sp.top_k, sp.max_tokens, sp.seed, sp.stop) == (
        4,
        0.7,
        0.9,
        20,
        33,
        5,
        ["END"],
    )
    plain = backend.sampling_params(SamplingParams())
    assert plain.top_k == -1 and plain.stop == []  # no top-k cut, no stop strings


def test_every_sampling_setting_is_explicit(fake_vllm, monkeypatch):
    """Nothing is left for vLLM to fill from the model's generation_config (Qwen-like defaults)."""
    seen = {}

    def spy(**kwargs):
        seen.update(kwargs)
        return FakeSamplingParams(**kwargs)

    backend = VLLMBackend("m")
    monkeypatch.setattr(backend._vllm, "SamplingParams", spy)
    backend.sampling_params(SamplingParams(temperature=0.9))
    assert seen["repetition_penalty"] == 1.0 and seen["min_p"] == 0.0 and seen["top_k"] == -1
    assert seen["presence_penalty"] == 0.0 and seen["frequency_penalty"] == 0.0
    assert (seen["temperature"], seen["top_p"]) == (0.9, 1.0)


def test_generate_shape_one_request_per_prompt_with_n(fake_vllm):
    backend = VLLMBackend("m")
    too_long = [{"role": "user", "content": "x" * 100}]  # 100+ fake tokens > max_model_len 64
    results = backend.generate([CONVERSATION, too_long, CONVERSATION], SamplingParams(n=3, seed=1))
    llm = FakeLLM.instances[0]
    assert len(llm.calls) == 1  # the whole batch in one llm.generate call
    prompts, sp = llm.calls[0]
    assert len(prompts) == 2 and [s.n for s in sp] == [3, 3]  # all k samples of a prompt in one request
    assert prompts[0]["prompt_token_ids"] == list(range(len("<user>hi<assistant>")))
    assert [len(r) for r in (results[0], results[2])] == [3, 3]
    assert isinstance(results[1], PromptError) and "context" in results[1].message
    first = results[0]
    assert [g.finish_reason for g in first] == ["length", "stop", "stop"]
    assert [g.native_finish_reason for g in first] == ["length", "stop", "stop"]  # vLLM's own, kept
    assert [g.completion_tokens for g in first] == [1, 2, 3]
    assert first[0].prompt_tokens == len("<user>hi<assistant>")


def test_llm_constructor_failure_is_a_config_error(fake_vllm):
    def boom(**kwargs):
        raise RuntimeError("CUDA out of memory\nmore")

    fake_vllm.LLM = boom
    with pytest.raises(BackendConfigError, match="CUDA out of memory"):
        VLLMBackend("m")


@pytest.mark.parametrize(
    "config",
    [
        {"gpu_memory_utilization": 0},
        {"gpu_memory_utilization": 1.5},
        {"tensor_parallel_size": 0},
        {"dtype": "int4"},
        {"quantum": 1},
    ],
)
def test_config_validation(config):
    with pytest.raises(ValueError):
        validate_config(config)


def test_a_hub_model_is_versioned_by_its_cached_commit(tmp_path, settings):
    """vLLM candidates of a Hub model recorded an empty model_version (the transformers backend had
    the commit from the loaded config): the version is now the commit of the cached snapshot."""
    from generation.backends.transformers import model_version_of
    from tests.hub_cache import COMMIT, seed_hub_cache

    settings.PREFHUB_HF_HUB_CACHE = str(tmp_path / "hub")
    seed_hub_cache(tmp_path / "hub", "meta-llama/Llama-3.1-8B-Instruct")
    assert model_version_of("meta-llama/Llama-3.1-8B-Instruct") == COMMIT
    assert model_version_of("meta-llama/Llama-3.1-8B-Instruct", "abc123") == "abc123"
    assert model_version_of("not-cached/model") == ""
