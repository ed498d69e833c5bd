"""The openai backend against a scripted fake server on 127.0.0.1 (no model needed): the API key
never reaches an error text, one odd answer fails only its own prompt, timeout_s bounds the whole
request, base URLs are taken as given, and the smaller retry rules (408, malformed 200,
Retry-After as a date, model_version per response)."""

from __future__ import annotations

import email.utils
import json
import time

import pytest

from annotate.models import Candidate
from generation import services
from generation.backends.base import BackendConfigError, PromptError, SamplingParams
from generation.backends.openai_compat import OpenAICompatBackend, normalise_base_url, validate_config
from generation.models import GenerationFailure
from tests import fake_openai
from tests.fake_openai import send
from tests.generation.conftest import add_prompts, openai_endpoint

HELLO = [{"role": "user", "content": "Hello there"}]
SECRET = "sk-live-SECRET-123"


# --- the scripted fake server (tests/fake_openai.py): answers -------------------------------------


def completion(texts, *, model="m", content=None):
    return {
        "id": "x",
        "object": "chat.completion",
        "model": model,
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": text if content is None else content},
                "finish_reason": "stop",
            }
            for i, text in enumerate(texts)
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2 * len(texts)},
    }


def ok(*texts, model="m"):
    return lambda h, body: send(h, 200, completion(list(texts) or ["hi"] * body.get("n", 1), model=model))


def error(status, headers=None, message=None):
    return lambda h, body: send(h, status, {"error": {"message": message or f"e{status}"}}, headers=headers)


@pytest.fixture
def fake_server(settings, stop_servers):
    settings.PREFHUB_ALLOWED_MODEL_HOSTS = ["127.0.0.1"]

    def start(script=(), default=None):
        server, url, _ = fake_openai.start(script=script, default=default or ok())
        stop_servers.append(server)
        return server, url

    return start


def backend_for(url, **kwargs):
    kwargs.setdefault("backoff_s", 0.01)
    kwargs.setdefault("sleep", lambda s: None)
    return OpenAICompatBackend("m", base_url=url, **kwargs)


def by_prompt(behaviours, default=None):
    """A server behaviour chosen by a substring of the last message."""

    def behave(handler, body):
        content = body["messages"][-1]["content"]
        for needle, behaviour in behaviours.items():
            if needle in content:
                return behaviour(handler, body)
        return (default or ok())(handler, body)

    return behave


# --- 4: the API key never reaches an error text ----------------------------------------------------


@pytest.mark.parametrize(
    "key", [f"{SECRET}\nX-Other: 1", f"sk-live\t{SECRET}\x7f", f"sk-clé-{SECRET}", f"sk live {SECRET}"]
)
def test_a_key_that_cannot_be_sent_is_a_config_error_naming_the_variable_not_the_key(
    key, fake_server, monkeypatch
):
    server, url = fake_server()
    monkeypatch.setenv("PREFHUB_KEY_PROBE", key)
    with pytest.raises(BackendConfigError) as info:
        backend_for(url, api_key_env="PREFHUB_KEY_PROBE").generate([HELLO], SamplingParams())
    message = str(info.value)
    assert "PREFHUB_KEY_PROBE" in message
    assert "SECRET" not in message and "sk-" not in message
    assert "SECRET" not in repr(info.value.__cause__) and info.value.__suppress_context__
    assert server.state["requests"] == []


def test_whitespace_around_the_key_is_not_part_of_it(fake_server, monkeypatch):
    """A secret file's trailing newline is the usual way a key picks up a control character."""
    server, url = fake_server()
    monkeypatch.setenv("PREFHUB_KEY_PROBE", f"  {SECRET}\n")
    [result] = backend_for(url, api_key_env="PREFHUB_KEY_PROBE").generate([HELLO], SamplingParams())
    assert [g.text for g in result] == ["hi"]
    assert server.state["requests"][0]["headers"]["Authorization"] == f"Bearer {SECRET}"


@pytest.mark.django_db
def test_a_bad_key_fails_the_job_without_the_key_in_the_job_or_its_failures(
    research_project, fake_server, monkeypatch
):
    server, url = fake_server()
    monkeypatch.setenv("PREFHUB_KEY_PROBE", f"{SECRET}\x07")
    endpoint = openai_endpoint(
        research_project, url, api_key_env="PREFHUB_KEY_PROBE", max_retries=1, backoff_s=0
    )
    add_prompts(research_project, 2)
    job = services.job_create(project=research_project, endpoints=[endpoint], k=2, enqueue=False)
    job = services.job_run_inline(job=job)
    assert job.state == "failed"
    assert "PREFHUB_KEY_PROBE" in job.error and "SECRET" not in job.error
    assert not any("SECRET" in m for m in GenerationFailure.objects.values_list("message", flat=True))
    assert server.state["requests"] == []


def test_a_server_echoing_the_key_does_not_put_it_in_error_texts(fake_server, monkeypatch):
    server, url = fake_server(
        script=[error(400, message=f"bad request from {SECRET}")],
        default=error(401, message=f"Incorrect API key provided: {SECRET}."),
    )
    monkeypatch.setenv("PREFHUB_KEY_PROBE", SECRET)
    backend = backend_for(url, api_key_env="PREFHUB_KEY_PROBE")
    [refused] = backend.generate([HELLO], SamplingParams())
    assert isinstance(refused, PromptError) and "400" in refused.message
    assert SECRET not in refused.message
    with pytest.raises(BackendConfigError) as info:
        backend.generate([HELLO], SamplingParams())
    assert "refused the API key" in str(info.value) and SECRET not in str(info.value)
    assert len(server.state["requests"]) == 2


@pytest.mark.parametrize(
    "answer",
    [
        lambda key: error(400, message="x" * 470 + f" Bearer {key} was refused"),  # cut at 500 characters
        lambda key: (200, None, ("y" * 290 + f" Bearer {key}").encode()),  # not JSON: its start is shown
        lambda key: (200, completion(["x"], content=[{"type": f"image_Bearer {key}"}]), None),  # part type
    ],
    ids=["long-error", "not-json", "part-type"],
)
def test_no_piece_of_the_key_survives_a_cut_message(fake_server, monkeypatch, answer):
    """Messages were cut (500, 300, 50 characters) before the key was scrubbed out, so a key cut in
    two left its first part in the error text. The answer is scrubbed before anything is cut."""
    key = "sk-live-" + "K" * 40 + "-END"
    spec = answer(key)
    if callable(spec):
        behaviour = spec
    else:
        status, payload, raw = spec

        def behaviour(handler, body):
            send(handler, status, payload, raw=raw)

    _, url = fake_server(default=behaviour)
    monkeypatch.setenv("PREFHUB_KEY_PROBE", key)
    [result] = backend_for(url, api_key_env="PREFHUB_KEY_PROBE", max_retries=0).generate(
        [HELLO], SamplingParams()
    )
    assert isinstance(result, PromptError)
    assert "sk-live-K" not in result.message and "KKKKKKKK" not in result.message, result.message


# --- 5: one odd answer fails only its own prompt ---------------------------------------------------


def test_content_given_as_text_parts_is_joined(fake_server):
    parts = [{"type": "text", "text": "par"}, {"type": "text", "text": "ts"}]
    _, url = fake_server(default=lambda h, body: send(h, 200, completion(["x"] * body["n"], content=parts)))
    [result] = backend_for(url).generate([HELLO], SamplingParams(n=2, seed=1))
    assert [g.text for g in result] == ["parts", "parts"]


@pytest.mark.parametrize(
    "content",
    [7, {"text": "x"}, [{"type": "image_url", "image_url": {"url": "http://x"}}], [{"type": "text"}]],
)
def test_content_that_is_not_text_fails_that_prompt_alone(content, fake_server):
    odd = lambda h, body: send(h, 200, completion(["x"], content=content))  # noqa: E731
    _, url = fake_server(default=by_prompt({"odd": odd}))
    results = backend_for(url).generate(
        [HELLO, [{"role": "user", "content": "odd one"}], HELLO], SamplingParams()
    )
    assert [g.text for g in results[0]] == ["hi"] and [g.text for g in results[2]] == ["hi"]
    assert isinstance(results[1], PromptError) and "content" in results[1].message


@pytest.mark.parametrize("raw", [b"[" * 200_000, b'{"choices": [', b"<html>oops</html>", b"[1, 2]"])
def test_a_body_that_is_not_a_completion_fails_that_prompt_alone(raw, fake_server):
    _, url = fake_server(default=by_prompt({"odd": lambda h, body: send(h, 200, raw=raw)}))
    results = backend_for(url, max_retries=3).generate(
        [HELLO, [{"role": "user", "content": "odd one"}], HELLO], SamplingParams()
    )
    assert [g.text for g in results[0]] == ["hi"] and [g.text for g in results[2]] == ["hi"]
    assert isinstance(results[1], PromptError)
    assert "not an OpenAI chat completion" in results[1].message or "not JSON" in results[1].message


@pytest.mark.django_db
def test_a_deeply_nested_answer_leaves_the_other_prompts_of_the_batch_written(research_project, fake_server):
    _, url = fake_server(default=by_prompt({"number 1": lambda h, body: send(h, 200, raw=b"[" * 200_000)}))
    endpoint = openai_endpoint(research_project, url, backoff_s=0)
    add_prompts(research_project, 4)
    job = services.job_create(
        project=research_project, endpoints=[endpoint], k=2, batch_size=4, enqueue=False
    )
    job = services.job_run_inline(job=job)
    assert Candidate.objects.filter(generation_job=job).count() == 6
    [failure] = GenerationFailure.objects.filter(job=job)
    assert "JSON" in failure.message


# --- 9: timeout_s bounds the whole request ---------------------------------------------------------


def trickle_body(seconds, every):
    def behave(handler, body):
        data = json.dumps(completion(["trickled"])).encode()
        count = int(seconds / every)
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data) + count))
        handler.end_headers()
        handler.wfile.write(data[:1])
        try:
            for _ in range(count):
                handler.wfile.write(b" ")
                handler.wfile.flush()
                time.sleep(every)
            handler.wfile.write(data[1:])
        except OSError:
            pass

    return behave


def trickle_headers(seconds, every):
    def behave(handler, body):
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        count = int(seconds / every)
        try:
            for i in range(count):
                handler.wfile.write(head[i : i + 1] if i < len(head) else b"")
                if i >= len(head):
                    handler.wfile.write(f"X-Pad-{i}: 1\r\n".encode())
                handler.wfile.flush()
                time.sleep(every)
        except OSError:
            pass
        handler.close_connection = True

    return behave


@pytest.mark.parametrize("trickle", [trickle_body, trickle_headers])
def test_a_server_trickling_bytes_is_cut_off_at_timeout_s(trickle, fake_server):
    _, url = fake_server(default=trickle(6, 0.3))
    started = time.monotonic()
    [result] = backend_for(url, timeout_s=1, max_retries=0).generate([HELLO], SamplingParams())
    elapsed = time.monotonic() - started
    assert isinstance(result, PromptError) and result.transient
    assert "did not answer within 1 s" in result.message
    assert elapsed < 1.8


def test_a_request_cut_off_at_timeout_s_is_retried(fake_server):
    server, url = fake_server(script=[trickle_body(6, 0.3)], default=ok("fine"))
    started = time.monotonic()
    [result] = backend_for(url, timeout_s=1, max_retries=1).generate([HELLO], SamplingParams())
    assert [g.text for g in result] == ["fine"]
    assert len(server.state["requests"]) == 2 and time.monotonic() - started < 2.5


# --- 10: base URLs as given -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://h:8000", "http://h:8000/v1"),
        ("http://h:8000/", "http://h:8000/v1"),
        (" http://h:8000/v1/ ", "http://h:8000/v1"),
        ("http://h:8000/v1//", "http://h:8000/v1"),
        (
            "https://generativelanguage.googleapis.com/v1beta/openai/",
            "https://generativelanguage.googleapis.com/v1beta/openai",
        ),
        ("https://api.example.com/openai/v1beta", "https://api.example.com/openai/v1beta"),
        ("http://h:8000/v1/chat/completions", "http://h:8000/v1"),
        ("http://h:8000/v1/chat/completions/", "http://h:8000/v1"),
        ("http://h:8000/v1/completions", "http://h:8000/v1"),
        ("http://h:8000/chat/completions", "http://h:8000/v1"),
        ("http://h:8000/V1", "http://h:8000/V1"),
        ("http://h:8000/v1?api-version=2024", "http://h:8000/v1?api-version=2024"),
        ("http://h:8000?api-version=2024", "http://h:8000/v1?api-version=2024"),
    ],
)
def test_base_url_is_kept_as_given_except_a_bare_host_or_a_pasted_endpoint(given, expected):
    assert normalise_base_url(given) == expected
    assert validate_config({"base_url": given}, resolve=False)["base_url"] == expected


@pytest.mark.parametrize(
    ("path", "sent"),
    [
        ("", "/v1/chat/completions"),
        ("/v1beta/openai/", "/v1beta/openai/chat/completions"),
        ("/v1/chat/completions", "/v1/chat/completions"),
        ("/v1?api-version=2024", "/v1/chat/completions?api-version=2024"),
    ],
)
def test_requests_go_to_chat_completions_under_the_base_url(path, sent, fake_server):
    server, url = fake_server()
    [result] = backend_for(url + path).generate([HELLO], SamplingParams())
    assert [g.text for g in result] == ["hi"]
    assert server.state["requests"][0]["path"] == sent


# --- 13: smaller retry rules and model_version --------------------------------------------------------


def test_408_is_retried(fake_server):
    server, url = fake_server(script=[error(408)], default=ok("fine"))
    [result] = backend_for(url).generate([HELLO], SamplingParams())
    assert [g.text for g in result] == ["fine"] and len(server.state["requests"]) == 2


def test_a_truncated_200_is_retried_once(fake_server):
    truncated = lambda h, body: send(h, 200, raw=b'{"choices": [')  # noqa: E731
    server, url = fake_server(script=[truncated], default=ok("fine"))
    [result] = backend_for(url).generate([HELLO], SamplingParams())
    assert [g.text for g in result] == ["fine"] and len(server.state["requests"]) == 2

    server, url = fake_server(default=truncated)
    [result] = backend_for(url, max_retries=3).generate([HELLO], SamplingParams())
    assert isinstance(result, PromptError) and not result.transient and "not JSON" in result.message
    assert len(server.state["requests"]) == 2  # once more, not max_retries times


@pytest.mark.parametrize(("ahead_s", "expected"), [(8, (6.0, 8.5)), (10**6, (30.0, 30.0))])
def test_retry_after_as_an_http_date_is_honoured_and_capped(ahead_s, expected, fake_server):
    when = email.utils.formatdate(time.time() + ahead_s, usegmt=True)
    _, url = fake_server(script=[error(429, {"Retry-After": when})], default=ok("fine"))
    sleeps = []
    [result] = backend_for(url, sleep=sleeps.append).generate([HELLO], SamplingParams())
    assert [g.text for g in result] == ["fine"]
    assert len(sleeps) == 1 and expected[0] <= sleeps[0] <= expected[1]


def test_retry_after_in_seconds_still_works(fake_server):
    _, url = fake_server(script=[error(503, {"Retry-After": "7"})], default=ok("fine"))
    sleeps = []
    backend_for(url, sleep=sleeps.append).generate([HELLO], SamplingParams())
    assert len(sleeps) == 1 and 7 <= sleeps[0] < 7.5


def test_model_version_follows_the_servers_answers(fake_server):
    _, url = fake_server(script=[ok("a", model="m-2024-01")], default=ok("b", model="m-2024-06"))
    backend = backend_for(url)
    backend.generate([HELLO], SamplingParams())
    assert backend.model_version == "m-2024-01"
    backend.generate([HELLO], SamplingParams())
    assert backend.model_version == "m-2024-06"  # the server was upgraded: the next batch says so


def test_each_response_carries_the_version_its_server_reported(fake_server):
    _, url = fake_server(script=[ok("a", model="m-2024-01")], default=ok("b", model="m-2024-06"))
    backend = backend_for(url, concurrency=1)
    first, second = backend.generate([HELLO, HELLO], SamplingParams())
    assert [g.model_version for g in first] == ["m-2024-01"]
    assert [g.model_version for g in second] == ["m-2024-06"]
