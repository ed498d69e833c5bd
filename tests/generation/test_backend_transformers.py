"""The transformers backend on the tiny offline model (CPU)."""

import json
from pathlib import Path

import pytest

from generation.backends.base import BackendConfigError, Generation, PromptError, SamplingParams
from generation.backends.transformers import TransformersBackend, validate_config

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "Hello, how are you?"}]
CAPITAL = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is the capital of France?"},
]


def test_shape_n_samples_and_token_counts(tiny_backend):
    results = tiny_backend.generate([HELLO, CAPITAL], SamplingParams(n=3, seed=1, max_new_tokens=12))
    assert len(results) == 2
    for gens in results:
        assert len(gens) == 3
        for gen in gens:
            assert isinstance(gen, Generation)
            assert gen.finish_reason in ("stop", "length")
            assert gen.native_finish_reason in ("eos", "stop_string", "length", "stop")
            assert (gen.native_finish_reason == "length") == (gen.finish_reason == "length")
            assert 0 <= gen.completion_tokens <= 12
            assert gen.prompt_tokens > 0
    # the system turn makes the second prompt longer
    assert results[1][0].prompt_tokens > results[0][0].prompt_tokens


def test_seeded_runs_repeat_and_seeds_differ(tiny_backend):
    params = SamplingParams(n=2, seed=42, max_new_tokens=10)
    first = tiny_backend.generate([HELLO, CAPITAL], params)
    again = tiny_backend.generate([HELLO, CAPITAL], params)
    other = tiny_backend.generate([HELLO, CAPITAL], params.replace(seed=43))
    assert first == again
    assert first != other
    # the n samples of one prompt are not copies of each other
    assert first[0][0].text != first[0][1].text


def test_left_padding_gives_batched_greedy_the_same_answer(tiny_backend):
    """With left padding and the attention mask, batching must not change a greedy answer."""
    params = SamplingParams(temperature=0, max_new_tokens=8)
    alone = tiny_backend.generate([HELLO], params)[0][0]
    batched = tiny_backend.generate([CAPITAL, HELLO], params)[1][0]
    assert alone.text == batched.text


def test_greedy_n_repeats_the_single_answer(tiny_backend):
    gens = tiny_backend.generate([HELLO], SamplingParams(temperature=0, n=3, max_new_tokens=6))[0]
    assert len(gens) == 3 and len({g.text for g in gens}) == 1


def test_length_finish_and_max_new_tokens(tiny_backend):
    # Random weights rarely say <|end|>: with 3 tokens allowed nearly every sample runs out.
    gens = tiny_backend.generate([HELLO], SamplingParams(n=8, seed=3, max_new_tokens=3))[0]
    assert all(g.completion_tokens <= 3 for g in gens)
    assert any(g.finish_reason == "length" for g in gens)
    assert all(g.finish_reason == "length" for g in gens if g.completion_tokens == 3)


def test_stop_strings_cut_the_text(tiny_backend):
    params = SamplingParams(n=4, seed=5, max_new_tokens=40)
    plain = tiny_backend.generate([HELLO], params)[0]
    # stop on a character that the unstopped samples produced, so it must trigger
    text = next(g.text for g in plain if len(g.text.strip()) > 3)
    stop = text.strip()[1]
    stopped = tiny_backend.generate([HELLO], params.replace(stop=[stop]))[0]
    assert all(stop not in g.text for g in stopped)
    assert any(g.finish_reason == "stop" for g in stopped)
    assert any(g.native_finish_reason == "stop_string" for g in stopped)


def test_too_long_prompt_fails_alone(tiny_backend):
    long = [{"role": "user", "content": "word " * 3000}]
    results = tiny_backend.generate([HELLO, long, []], SamplingParams(n=2, seed=0, max_new_tokens=4))
    assert len(results[0]) == 2
    assert isinstance(results[1], PromptError)
    assert "context" in results[1].message and "1024" in results[1].message
    assert isinstance(results[2], PromptError)
    assert not results[1].transient


def test_prompt_near_context_end_gets_what_room_is_left(tiny_model_path):
    backend = TransformersBackend(tiny_model_path, max_model_len=20)
    gens = backend.generate([HELLO], SamplingParams(n=1, seed=0, max_new_tokens=50))[0]
    assert gens[0].prompt_tokens + gens[0].completion_tokens <= 20


def test_micro_batches_cover_all_prompts(tiny_model_path):
    backend = TransformersBackend(tiny_model_path, batch_size=4)  # 4 sequences: 2 prompts x n=2 per pass
    prompts = [[{"role": "user", "content": f"prompt {i} " * (i + 1)}] for i in range(7)]
    results = backend.generate(prompts, SamplingParams(n=2, seed=9, max_new_tokens=5))
    assert [len(r) for r in results] == [2] * 7
    assert [r[0].prompt_tokens for r in results] == sorted(r[0].prompt_tokens for r in results)


def test_unknown_model_path_is_a_clear_config_error(tmp_path):
    with pytest.raises(BackendConfigError) as info:
        TransformersBackend(str(tmp_path / "no-such-model"), local_files_only=True)
    assert "no-such-model" in str(info.value)


def test_tokenizer_without_chat_template_is_refused(tiny_model_path, tmp_path):
    import shutil

    copy = tmp_path / "no-template"
    shutil.copytree(tiny_model_path, copy)
    (copy / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((copy / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (copy / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(BackendConfigError, match="no chat template"):
        TransformersBackend(str(copy))


def test_model_version_fingerprints_the_weights(tiny_backend, tiny_model_path):
    assert tiny_backend.model_version.startswith("sha256:")
    assert Path(tiny_model_path, "config.json").exists()


@pytest.mark.parametrize(
    "config",
    [
        {"device": "tpu"},
        {"dtype": "int3"},
        {"batch_size": 0},
        {"max_model_len": 1},
        {"trust_remote_code": True},
    ],
)
def test_config_validation(config):
    with pytest.raises(ValueError):
        validate_config(config)


def test_cuda_device_without_gpu_is_a_config_error(tiny_model_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(BackendConfigError, match="no CUDA GPU"):
        TransformersBackend(tiny_model_path, device="cuda")


def test_a_short_prompt_keeps_its_room_beside_a_long_one_near_the_context_end(tiny_model_path, monkeypatch):
    """``max_new_tokens`` was capped by the longest prompt of the micro-batch: beside a prompt near
    the end of the context, a short one got 10 new tokens instead of 30. Each prompt now gets what
    its own length leaves."""
    backend = TransformersBackend(tiny_model_path, batch_size=8, max_model_len=80)
    long = [{"role": "user", "content": "tell me a much longer story about cats and dogs " * 2}]
    real = backend.model.generate
    calls: list[tuple[int, int]] = []

    def spy(**kwargs):
        calls.append((kwargs["input_ids"].shape[1], kwargs["max_new_tokens"]))
        return real(**kwargs)

    monkeypatch.setattr(backend.model, "generate", spy)
    results = backend.generate([HELLO, long], SamplingParams(temperature=0, max_new_tokens=30))
    short_len, long_len = results[0][0].prompt_tokens, results[1][0].prompt_tokens
    assert long_len > 80 - 30, "the long prompt must leave less than max_new_tokens"
    room = {width: new for width, new in calls}
    assert room[short_len] == 30 and room[long_len] == 80 - long_len


def test_a_row_stopped_early_in_a_batch_counts_only_its_own_tokens(tiny_backend, monkeypatch):
    """A row that ends on a stop string while another runs on is padded to the batch's length; the
    padding was counted as its tokens (completion_tokens = the whole budget) and the staged check
    flagged it over_length. Only the row's own tokens count, and it finished by stopping."""
    import torch

    backend = tiny_backend
    pad = backend.pad_id
    word = backend.tokenizer("cat", add_special_tokens=False)["input_ids"][0]
    assert pad not in backend.eos_ids or pytest.skip("the tiny model pads with an end token")

    def fake(**kwargs):
        new = kwargs["max_new_tokens"]
        rows = [[word] * 3 + [pad] * (new - 3), [word] * new]  # row 0 stopped after 3 tokens
        return torch.cat([kwargs["input_ids"].cpu(), torch.tensor(rows)], dim=1)

    monkeypatch.setattr(backend.model, "generate", fake)
    # a stop string ended row 0 (without one, generate() pads only rows that ended with an end id)
    first, second = backend._generate_chunk(
        [[1, 2, 3], [1, 2, 3]], SamplingParams(temperature=0, max_new_tokens=8, stop=["END"]), None
    )
    assert (first[0].completion_tokens, first[0].finish_reason) == (3, "stop")
    assert (second[0].completion_tokens, second[0].finish_reason) == (8, "length")
