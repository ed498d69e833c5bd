"""The openai backend against a real OpenAI-compatible HTTP server (generation.openai_server)
serving the tiny model through the transformers backend, on 127.0.0.1."""

import socket
import time

import pytest

from generation.backends.base import BackendConfigError, PromptError, SamplingParams, prompt_seed
from generation.backends.openai_compat import OpenAICompatBackend, normalise_base_url, validate_config
from generation.backends.urlguard import UnsafeURL, check_url
from generation.openai_server import serve_in_thread

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(autouse=True)
def _allow_loopback(settings):
    settings.PREFHUB_ALLOWED_MODEL_HOSTS = ["127.0.0.1"]


@pytest.fixture
def server_factory(tiny_backend, stop_servers):
    def start(**options):
        server, url = serve_in_thread(tiny_backend, served_model_name="tiny", **options)
        stop_servers.append(server)
        return server, url

    return start


def backend_for(url, **kwargs):
    kwargs.setdefault("backoff_s", 0.01)
    return OpenAICompatBackend("tiny", base_url=url, **kwargs)


def test_n_samples_in_one_request(server_factory):
    server, url = server_factory()
    backend = backend_for(url)
    results = backend.generate([HELLO, HELLO], SamplingParams(n=3, seed=11, max_new_tokens=6, stop=["zz"]))
    assert [len(r) for r in results] == [3, 3]
    assert server.state.requests == 2  # one request per prompt, n=3 each
    body = server.state.bodies[0]
    assert body["n"] == 3 and body["max_tokens"] == 6 and body["stop"] == ["zz"]
    # the batch's seed, and the second prompt's own (base.prompt_seed); in either order (concurrent)
    assert sorted(b["seed"] for b in server.state.bodies) == sorted([11, prompt_seed(11, 1)])
    assert body["model"] == "tiny"
    assert results[0][0].prompt_tokens > 0
    assert all(g.finish_reason in ("stop", "length") for g in results[0])
    assert backend.model_version.startswith("prefhub-sha256:")


def test_every_sampling_setting_is_sent(server_factory):
    """`vllm serve` fills every setting a request leaves out from the model's generation_config:
    all are sent, neutral unless recorded, so the recorded params are what produced the samples."""
    server, url = server_factory()
    backend_for(url).generate([HELLO], SamplingParams(temperature=0.8, max_new_tokens=4, seed=1))
    body = server.state.bodies[0]
    assert (body["temperature"], body["top_p"], body["top_k"]) == (0.8, 1.0, -1)
    assert (body["repetition_penalty"], body["min_p"]) == (1.0, 0.0)
    assert (body["presence_penalty"], body["frequency_penalty"]) == (0.0, 0.0)


def test_top_k_on_an_endpoint_that_cannot_send_it_fails_instead_of_being_dropped(server_factory):
    server, url = server_factory()
    [result] = backend_for(url, send_top_k=False).generate([HELLO], SamplingParams(top_k=5, max_new_tokens=4))
    assert isinstance(result, PromptError) and "top_k" in result.message
    assert server.state.requests == 0


def test_same_seed_same_samples_through_the_server(server_factory):
    _, url = server_factory()
    backend = backend_for(url)
    params = SamplingParams(n=2, seed=4, max_new_tokens=6)
    assert backend.generate([HELLO], params) == backend.generate([HELLO], params)


def test_retries_5xx_then_succeeds(server_factory):
    server, url = server_factory(fail_first=2, fail_status=503)
    sleeps = []
    backend = backend_for(url, max_retries=3, sleep=sleeps.append)
    results = backend.generate([HELLO], SamplingParams(n=2, seed=1, max_new_tokens=4))
    assert len(results[0]) == 2
    assert server.state.requests == 3
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0]  # exponential backoff


def test_429_is_retried_too(server_factory):
    server, url = server_factory(fail_first=1, fail_status=429)
    results = backend_for(url).generate([HELLO], SamplingParams(max_new_tokens=4))
    assert len(results[0]) == 1 and server.state.requests == 2


def test_gives_up_after_retries_with_a_transient_prompt_error(server_factory):
    server, url = server_factory(fail_first=100, fail_status=502)
    results = backend_for(url, max_retries=2).generate([HELLO], SamplingParams(max_new_tokens=4))
    err = results[0]
    assert isinstance(err, PromptError) and err.transient
    assert "502" in err.message and "3 attempts" in err.message
    assert server.state.requests == 3


def test_timeout_is_retried_and_then_succeeds(server_factory):
    server, url = server_factory(delay_s=3.0, delay_first=1)
    backend = backend_for(url, timeout_s=1.0, max_retries=2)
    started = time.monotonic()
    results = backend.generate([HELLO], SamplingParams(max_new_tokens=4))
    assert len(results[0]) == 1
    assert server.state.requests == 2
    assert time.monotonic() - started < 3  # did not wait for the slow answer


def test_timeout_every_time_fails_the_prompt_clearly(server_factory):
    _, url = server_factory(delay_s=0.6)
    results = backend_for(url, timeout_s=0.2, max_retries=1).generate(
        [HELLO], SamplingParams(max_new_tokens=4)
    )
    assert isinstance(results[0], PromptError) and results[0].transient
    assert "did not answer within 0.2 s" in results[0].message


def test_falls_back_to_single_requests_when_n_is_refused(server_factory):
    server, url = server_factory(refuse_n=True)
    backend = backend_for(url)
    results = backend.generate([HELLO], SamplingParams(n=3, seed=20, max_new_tokens=4))
    assert len(results[0]) == 3
    seeds = [b["seed"] for b in server.state.bodies if b["n"] == 1]
    assert seeds == [20, 21, 22]
    assert backend._n_supported is False
    before = server.state.requests
    backend.generate([HELLO], SamplingParams(n=2, seed=1, max_new_tokens=4))
    assert server.state.requests - before == 2  # remembered: no n=2 attempt any more


def test_too_long_prompt_fails_alone_with_the_servers_message(server_factory):
    _, url = server_factory()
    long = [{"role": "user", "content": "word " * 3000}]
    results = backend_for(url).generate([long, HELLO], SamplingParams(n=2, max_new_tokens=4))
    assert isinstance(results[0], PromptError) and not results[0].transient
    assert "400" in results[0].message and "context" in results[0].message
    assert len(results[1]) == 2


def test_wrong_model_name_is_a_config_error(server_factory):
    _, url = server_factory()
    backend = OpenAICompatBackend("not-served", base_url=url)
    with pytest.raises(BackendConfigError, match="404"):
        backend.generate([HELLO], SamplingParams(max_new_tokens=2))


def test_api_key_comes_from_the_named_environment_variable(server_factory, monkeypatch):
    _, url = server_factory(api_key="s3cret")
    monkeypatch.setenv("PREFHUB_KEY_TINY", "s3cret")
    ok = OpenAICompatBackend("tiny", base_url=url, api_key_env="PREFHUB_KEY_TINY")
    assert len(ok.generate([HELLO], SamplingParams(max_new_tokens=2))[0]) == 1
    monkeypatch.setenv("PREFHUB_KEY_TINY", "wrong")
    refused = OpenAICompatBackend("tiny", base_url=url, api_key_env="PREFHUB_KEY_TINY")
    with pytest.raises(BackendConfigError, match="refused the API key"):
        refused.generate([HELLO], SamplingParams(max_new_tokens=2))
    monkeypatch.delenv("PREFHUB_KEY_TINY")
    with pytest.raises(BackendConfigError, match="PREFHUB_KEY_TINY"):
        OpenAICompatBackend("tiny", base_url=url, api_key_env="PREFHUB_KEY_TINY")
    monkeypatch.setenv("DJANGO_SECRET_KEY", "worker-secret")
    with pytest.raises(BackendConfigError, match="start with PREFHUB_KEY_"):
        OpenAICompatBackend("tiny", base_url=url, api_key_env="DJANGO_SECRET_KEY")


def test_connection_refused_is_transient():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = backend_for(f"http://127.0.0.1:{port}", max_retries=1).generate([HELLO], SamplingParams())
    assert isinstance(results[0], PromptError) and results[0].transient
    assert "Could not reach" in results[0].message


def test_concurrency_is_bounded(server_factory):
    _, url = server_factory(delay_s=0.2)
    backend = backend_for(url, concurrency=4)
    started = time.monotonic()
    results = backend.generate([HELLO] * 8, SamplingParams(max_new_tokens=2))
    elapsed = time.monotonic() - started
    assert all(len(r) == 1 for r in results)
    assert elapsed >= 0.4  # 8 requests, 4 at a time, 0.2 s each: at least two rounds


# --- the SSRF guard -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/v1",
        "http://localhost:8000/v1",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.5/v1",
        "http://192.168.1.10/v1",
        "http://172.16.0.1/v1",
        "http://[::1]:8000/v1",
        "http://[::ffff:127.0.0.1]/v1",
        "http://0.0.0.0/v1",
        "http://100.64.0.1/v1",
    ],
)
def test_internal_addresses_are_refused(url, settings):
    settings.PREFHUB_ALLOWED_MODEL_HOSTS = []
    with pytest.raises(UnsafeURL):
        check_url(url)
    with pytest.raises(UnsafeURL):  # refused when built (literal IPs) or before the first request
        OpenAICompatBackend("m", base_url=url, max_retries=0).generate([HELLO], SamplingParams())
    with pytest.raises(ValueError):
        validate_config({"base_url": url})


@pytest.mark.parametrize(
    "url", ["ftp://example.com/v1", "http://user:pw@example.com/v1", "http:///v1", "file:///etc/passwd"]
)
def test_bad_urls_are_refused(url):
    with pytest.raises(UnsafeURL):
        check_url(url, resolve=False)


def test_allowed_host_is_exempt(settings):
    settings.PREFHUB_ALLOWED_MODEL_HOSTS = ["127.0.0.1"]
    assert check_url("http://127.0.0.1:9/v1").url == "http://127.0.0.1:9/v1"
    settings.PREFHUB_ALLOWED_MODEL_HOSTS = []
    with pytest.raises(UnsafeURL):
        check_url("http://127.0.0.1:9/v1")


def test_requests_are_pinned_to_the_checked_address(monkeypatch, settings):
    settings.PREFHUB_ALLOWED_MODEL_HOSTS = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [(2, 1, 6, "", ("93.184.215.14", 443))])
    target = check_url("https://models.example.com:8443/v1/chat/completions")
    assert target.url == "https://93.184.215.14:8443/v1/chat/completions"
    assert target.headers == {"Host": "models.example.com:8443"}
    assert target.extensions == {"sni_hostname": "models.example.com"}
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [(2, 1, 6, "", ("10.1.2.3", 443))])
    with pytest.raises(UnsafeURL, match="private"):
        check_url("https://models.example.com/v1")


def test_unresolvable_host_is_a_connection_error_not_a_config_error(monkeypatch, settings):
    settings.PREFHUB_ALLOWED_MODEL_HOSTS = []

    def no_dns(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    assert (
        validate_config({"base_url": "http://gpu-box.internal:8000"})["base_url"]
        == "http://gpu-box.internal:8000/v1"
    )
    result = backend_for("http://gpu-box.internal:8000", max_retries=1).generate([HELLO], SamplingParams())[0]
    assert isinstance(result, PromptError) and result.transient and "Cannot resolve" in result.message


def test_redirects_are_not_followed(settings):
    """A public server answering 30x towards an internal address gets nowhere."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(307)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        result = backend_for(url).generate([HELLO], SamplingParams())[0]
        assert isinstance(result, PromptError) and "not followed" in result.message
    finally:
        server.shutdown()
        server.server_close()


def test_config_validation():
    assert normalise_base_url("http://h:8000/") == "http://h:8000/v1"
    assert normalise_base_url("http://h:8000/v1/") == "http://h:8000/v1"
    ok = validate_config(
        {"base_url": "https://api.example.com", "api_key_env": "PREFHUB_KEY_OPENAI"}, resolve=False
    )
    assert ok["base_url"] == "https://api.example.com/v1"
    for bad in (
        {},
        {"base_url": "http://h", "api_key_env": "sk-abcdef0123456789"},
        {"base_url": "http://h", "api_key_env": "has space"},
        {"base_url": "http://h", "api_key_env": "DJANGO_SECRET_KEY"},  # not a PREFHUB_KEY_* variable
        {"base_url": "http://h", "concurrency": 0},
        {"base_url": "http://h", "timeout_s": "slow"},
        {"base_url": "http://h", "api_key": "x"},
    ):
        with pytest.raises(ValueError):
            validate_config(bad, resolve=False)


def test_the_servers_own_finish_reason_is_kept():
    """A content filter or a tool call is not a normal stop: the staged checks need to know."""
    from generation.backends.openai_compat import build

    backend = build("m", {"base_url": "https://api.example.com/v1"})
    choices = [
        {"index": i, "message": {"content": f"c{i}"}, "finish_reason": reason}
        for i, reason in enumerate(["stop", "length", "content_filter", None])
    ]
    gens = backend._parse({"choices": choices, "model": "m"}, 4)
    assert [g.finish_reason for g in gens] == ["stop", "length", "stop", "stop"]
    assert [g.native_finish_reason for g in gens] == ["stop", "length", "content_filter", ""]
