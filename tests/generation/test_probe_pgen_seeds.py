"""A batch's seed must not make its prompts draw the same random numbers. vLLM and OpenAI-compatible
servers seed each request's sampler on its own: one seed sent with every prompt of a batch gave two
copies of a prompt the same samples (and different prompts correlated ones), where the transformers
backend, sampling the batch's rows from one stream, gives each its own. Each prompt now gets a seed of
its own, derived from the batch's (the first keeps it), so a batch stays reproducible."""

from __future__ import annotations

import pytest

from generation.backends.base import SamplingParams, prompt_seed
from generation.backends.openai_compat import OpenAICompatBackend
from generation.openai_server import serve_in_thread
from tests.generation.test_backend_vllm import FakeLLM, FakeSamplingParams, install_fake_vllm

HELLO = [{"role": "user", "content": "Hello there"}]
PARAMS = SamplingParams(n=2, seed=3, temperature=1.0, max_new_tokens=10)


def _texts(result):
    return [g.text for g in result]


@pytest.mark.slow
def test_two_copies_of_a_prompt_get_their_own_samples_through_a_server(
    tiny_backend, stop_servers, settings, one_thread
):
    settings.PREFHUB_ALLOWED_MODEL_HOSTS = ["127.0.0.1"]
    # the reference: the transformers backend samples each copy on its own
    first, second = tiny_backend.generate([HELLO, HELLO], PARAMS)
    assert _texts(first) != _texts(second)
    server, url = serve_in_thread(tiny_backend, served_model_name="tiny")
    stop_servers.append(server)
    backend = OpenAICompatBackend("tiny", base_url=url, backoff_s=0.01, concurrency=1)
    first, second = backend.generate([HELLO, HELLO], PARAMS)
    assert _texts(first) != _texts(second)
    assert sorted(b["seed"] for b in server.state.bodies) == sorted([3, prompt_seed(3, 1)])
    assert backend.generate([HELLO, HELLO], PARAMS) == [first, second]  # still reproducible


def test_vllm_gets_a_seed_per_prompt(monkeypatch):
    from generation.backends.vllm import VLLMBackend

    FakeLLM.instances = []
    install_fake_vllm(monkeypatch, FakeLLM, FakeSamplingParams)
    backend = VLLMBackend("m")
    conversation = [{"role": "user", "content": "hi"}]
    backend.generate([conversation, conversation, conversation], SamplingParams(n=4, seed=9))
    [(prompts, sampling)] = FakeLLM.instances[0].calls
    assert isinstance(sampling, list) and len(sampling) == len(prompts) == 3
    seeds = [sp.seed for sp in sampling]
    assert seeds[0] == 9 and seeds == [prompt_seed(9, i) for i in range(3)]
    # vLLM seeds a request's n samples seed, seed+1, ...: no two prompts share one
    children = [s + j for s in seeds for j in range(4)]
    assert len(set(children)) == len(children)
    assert all(sp.n == 4 for sp in sampling)


def test_prompt_seed():
    assert prompt_seed(None, 3) is None and prompt_seed(5, 0) == 5
    seeds = {prompt_seed(5, i) for i in range(1000)}
    assert len(seeds) == 1000 and all(0 <= s < 2**31 - 64 for s in seeds)  # a 32-bit server's range
    assert prompt_seed(5, 7) == prompt_seed(5, 7) != prompt_seed(6, 7)
