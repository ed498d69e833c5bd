"""Backend for any OpenAI-compatible chat server (``vllm serve``, TGI, llama.cpp, hosted APIs).

``POST {base_url}/chat/completions`` with ``n=k`` (all samples of a prompt in one request), the
prompt's seed (``base.prompt_seed``: a server seeds each request alike) and stop strings. If the
server refuses ``n > 1`` the backend falls back to k requests of one sample each (seeds ``seed,
seed+1, ...``) and remembers that for the rest of its life.

* Concurrency: a thread pool of ``concurrency`` requests in flight (one ``httpx.Client``).
* Base URL: as the OpenAI SDK takes it, the requests go to ``{base_url}/chat/completions`` (query
  string kept). A bare host (``http://host:8000``) gets ``/v1``; a pasted ``.../chat/completions``
  is taken off; any other path is kept as given (``.../v1beta/openai`` for Gemini).
* Timeouts: ``timeout_s`` for the whole request, from connecting to the last byte of the answer
  (connect capped at 10 s); a server that trickles its answer is cut off there too.
* Retries: 5xx, 408, 429 (honouring Retry-After, in seconds or as an HTTP date, capped at 30 s),
  timeouts and connection errors are retried ``max_retries`` times with exponential backoff
  (``backoff_s * 2**attempt``, jittered); after that the prompt fails with ``transient=True``. A 200
  whose body is not JSON (cut short by a proxy...) is tried once more, then fails that prompt.
* 4xx: 401/403 (key refused) and 404 (wrong URL or model) fail the whole endpoint with
  BackendConfigError; 400/422 fail that prompt with the server's own message.
* An answer that is not a chat completion (not JSON, nested too deep, content that is not text)
  fails its own prompt only. Content given as a list of text parts is joined.
* Each response carries the version its answer reported (``Generation.model_version``:
  ``system_fingerprint``, else ``model``), so a server upgraded between batches is recorded, and
  two batches sharing the backend in threads never record each other's; ``model_version`` is
  what the latest answers of the last ``generate`` call reported.
* The API key comes from the environment variable *named* in ``api_key_env``; it is never stored
  in the database. Only variables named ``PREFHUB_KEY_*`` can be used, so an endpoint cannot be
  made to send a worker's other secrets (DJANGO_SECRET_KEY, DATABASE_URL...) to a server of its
  choosing. Whitespace around the key is dropped; a key with any other character outside printable
  ASCII is a BackendConfigError naming the variable, and no error text ever holds the key.
* Every URL goes through :mod:`generation.backends.urlguard` (no internal addresses unless the
  host is allowed), redirects are not followed and responses are capped in size.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import logging
import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AnyStr
from urllib.parse import urlsplit, urlunsplit

import httpcore
import httpx

from annotate.validation import storable_text
from generation.backends.base import (
    BackendConfigError,
    Generation,
    PromptError,
    SamplingParams,
    check_conversation,
    first_line,
    known_settings,
    prompt_seed,
    token_count,
)
from generation.backends.urlguard import UnresolvableHost, UnsafeURL, check_url

log = logging.getLogger(__name__)

CONFIG_KEYS = (
    "base_url",
    "api_key_env",
    "concurrency",
    "timeout_s",
    "max_retries",
    "backoff_s",
    "send_top_k",
)
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
KEY_ENV_PREFIX = "PREFHUB_KEY_"


def check_key_env(name: object) -> str:
    """The name of the environment variable holding an API key (ValueError if not acceptable)."""
    if not isinstance(name, str) or not ENV_NAME.match(name) or name.startswith("sk-"):
        raise ValueError(
            f"api_key_env is the NAME of an environment variable holding the key (e.g. {KEY_ENV_PREFIX}OPENAI), "
            "never the key itself."
        )
    if not name.startswith(KEY_ENV_PREFIX):
        raise ValueError(
            f"API keys are read only from environment variables whose names start with {KEY_ENV_PREFIX} "
            f"(e.g. {KEY_ENV_PREFIX}OPENAI), so other secrets of the workers stay out of reach."
        )
    return name


MAX_RESPONSE_BYTES = 32 * 1024 * 1024
MAX_RETRY_AFTER_S = 30.0
RETRIED_STATUSES = frozenset({408, 429})
#: an API key is sent as it is in an HTTP header: printable ASCII, no spaces
KEY_CHARS = re.compile(r"^[\x21-\x7e]+$")
PASTED_ENDPOINT = re.compile(r"/(chat/)?completions$", re.IGNORECASE)


def normalise_base_url(base_url: str) -> str:
    """The base URL as the OpenAI SDK takes it: ``http://host:8000`` (a bare host) becomes
    ``http://host:8000/v1``; a pasted ``.../v1/chat/completions`` (or ``/completions``) becomes
    ``.../v1``; trailing slashes go; any other path and the query string are kept as given."""
    parts = urlsplit(base_url.strip())
    path = PASTED_ENDPOINT.sub("", parts.path.rstrip("/")).rstrip("/") or "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def endpoint_url(base_url: str, name: str) -> str:
    """``{base_url}/{name}`` with the base URL's query string kept at the end."""
    parts = urlsplit(base_url)
    return urlunsplit((parts.scheme, parts.netloc, f"{parts.path.rstrip('/')}/{name}", parts.query, ""))


# -- a deadline for the whole request -------------------------------------------------------------
# httpx's timeouts limit each read or write, so a server sending a byte now and then could hold a
# request for ever. Every socket operation of a request made in a thread with a deadline set gets
# at most the time left until it (and times out at once past it).
_deadline = threading.local()


def _bounded(timeout: float | None, error: type[Exception]) -> float | None:
    deadline = getattr(_deadline, "at", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the whole request took longer than timeout_s")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> httpcore.NetworkStream:
        return _DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, _bounded(timeout, httpcore.ConnectTimeout))
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        return _DeadlineStream(
            self._inner.connect_tcp(
                host, port, _bounded(timeout, httpcore.ConnectTimeout), local_address, socket_options
            )
        )

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        return _DeadlineStream(
            self._inner.connect_unix_socket(path, _bounded(timeout, httpcore.ConnectTimeout), socket_options)
        )

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _deadline_transport(concurrency: int) -> httpx.HTTPTransport:
    """httpx's own transport with each connection's socket operations bounded by the deadline
    (httpx offers no public hook for its connection pool's network backend: when a later httpx
    moves it, the deadline is still checked between the chunks of the answer in ``_post``). The
    pool holds ``concurrency`` connections at least, so no request spends its time waiting for one."""
    limits = httpx.Limits(max_connections=max(100, concurrency), max_keepalive_connections=20)
    transport = httpx.HTTPTransport(limits=limits, trust_env=False)
    pool = getattr(transport, "_pool", None)
    inner = getattr(pool, "_network_backend", None)
    if isinstance(inner, httpcore.NetworkBackend):
        pool._network_backend = _DeadlineBackend(inner)
    return transport


def validate_config(config: dict, *, resolve: bool = True) -> dict:
    """Check an endpoint's config; ``resolve`` also checks where the base URL's host resolves."""
    out = known_settings(config, CONFIG_KEYS, "openai")
    base_url = out.get("base_url")
    if not isinstance(base_url, str) or not base_url.strip():
        raise ValueError("base_url is required (e.g. http://gpu-box:8000/v1).")
    out["base_url"] = normalise_base_url(base_url)
    try:
        check_url(out["base_url"], resolve=resolve)
    except UnresolvableHost:
        pass  # the workers may resolve it; each request is checked again there
    except UnsafeURL as exc:
        raise ValueError(str(exc)) from exc
    if out.get("api_key_env") in (None, ""):
        out.pop("api_key_env", None)
    else:
        check_key_env(out["api_key_env"])
    for name, low, high, kind in (
        ("concurrency", 1, 256, int),
        ("max_retries", 0, 10, int),
        ("timeout_s", 0.001, 3600, float),
        ("backoff_s", 0, 60, float),
    ):
        if name in out:
            value = out[name]
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or (kind is int and not isinstance(value, int))
            ):
                raise ValueError(f"{name} must be a number.")
            if not low <= value <= high:
                raise ValueError(f"{name} must be between {low} and {high}.")
    if "send_top_k" in out and not isinstance(out["send_top_k"], bool):
        raise ValueError("send_top_k must be true or false.")
    return out


class _NRefused(Exception):
    """The server refused n > 1 (or said something 4xx with n > 1: try single samples)."""

    def __init__(self, prompt_error: PromptError) -> None:
        super().__init__(prompt_error.message)
        self.prompt_error = prompt_error


class OpenAICompatBackend:
    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        api_key_env: str | None = None,
        concurrency: int = 8,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        send_top_k: bool = True,
        sleep=time.sleep,
    ) -> None:
        self.model_name = model
        self.model_version = ""
        self.base_url = normalise_base_url(base_url)
        self.chat_url = endpoint_url(self.base_url, "chat/completions")
        check_url(self.base_url, resolve=False)  # scheme, credentials, literal IPs; each request resolves
        self.concurrency = concurrency
        self.timeout_s = float(timeout_s)
        self.max_retries = max_retries
        self.backoff_s = float(backoff_s)
        self.send_top_k = send_top_k
        self._sleep = sleep
        self._n_supported = True
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        headers = {"Accept": "application/json", "User-Agent": "prefhub-generation"}
        if api_key_env:
            try:
                check_key_env(api_key_env)
            except ValueError as exc:
                raise BackendConfigError(str(exc)) from exc
            raw_key = os.environ.get(api_key_env) or ""
            key = raw_key.strip()
            if not key:
                raise BackendConfigError(
                    f"The environment variable {api_key_env} (the API key) is not set on this worker."
                )
            if not KEY_CHARS.match(key):
                # Checked here, before any request: the HTTP library's own error would quote it.
                raise BackendConfigError(
                    f"The API key in the environment variable {api_key_env} cannot be sent in an HTTP "
                    "header: it holds a space, a control character (a line break inside it?) or a "
                    "non-ASCII character. Set the variable to the key alone."
                ) from None
            self._secrets = tuple(
                dict.fromkeys(s for s in (key, raw_key, repr(raw_key)[1:-1], f"Bearer {key}") if len(s) >= 4)
            )
            headers["Authorization"] = f"Bearer {key}"
        self.client = httpx.Client(
            timeout=httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 10.0)),
            follow_redirects=False,
            headers=headers,
            trust_env=False,
            transport=_deadline_transport(concurrency),
        )

    def close(self) -> None:
        self.client.close()

    # -- public ------------------------------------------------------------------------------
    def generate(
        self, conversations: list[list[dict]], params: SamplingParams
    ) -> list[list[Generation] | PromptError]:
        if not conversations:
            return []
        pool = ThreadPoolExecutor(
            max_workers=min(self.concurrency, len(conversations)), thread_name_prefix="openai"
        )
        try:
            futures = [
                pool.submit(self._one, conversation, params.replace(seed=prompt_seed(params.seed, i)))
                for i, conversation in enumerate(conversations)
            ]
            done = [future.result() for future in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        versions = [seen for _, seen in done if seen]
        if versions:
            # The latest answer's: a server upgraded since the last batch is recorded as such.
            self.model_version = max(versions)[1]
        return [result for result, _ in done]

    # -- internals ---------------------------------------------------------------------------
    def _scrub(self, value: AnyStr) -> AnyStr:
        """``value`` (a message, or a response body before any part of it is cut for a message: a key
        cut in two would pass a later scrub) without the API key (a server may echo it, an error may
        quote a header)."""
        for secret in self._secrets:
            if isinstance(value, bytes):
                value = value.replace(secret.encode(), b"[API key]")
            else:
                value = value.replace(secret, "[API key]")
        return value

    def _one(
        self, conversation: list[dict], params: SamplingParams
    ) -> tuple[list[Generation] | PromptError, tuple[float, str] | None]:
        """The prompt's generations (or its PromptError), and when and which model_version the
        server last reported for it."""
        seen: list[tuple[float, str]] = []
        try:
            check_conversation(conversation)
            gens: list[Generation] = []
            if params.n > 1 and self._n_supported:
                try:
                    gens = self._request(conversation, params, n=params.n, seed=params.seed, seen=seen)
                    gens = gens[: params.n]
                except _NRefused:
                    # Try one sample; if that is refused too, its PromptError is the answer.
                    gens = self._request(conversation, params, n=1, seed=params.seed, seen=seen)
                    with self._lock:
                        self._n_supported = False
            while len(gens) < params.n:
                seed = None if params.seed is None else params.seed + len(gens)
                gens.extend(self._request(conversation, params, n=1, seed=seed, seen=seen)[:1])
            result: list[Generation] | PromptError = gens
        except PromptError as err:
            result = PromptError(self._scrub(err.message), transient=err.transient)
        except BackendConfigError as exc:
            if any(secret in str(exc) for secret in self._secrets):
                raise BackendConfigError(self._scrub(str(exc))) from None
            raise
        except Exception as exc:  # an answer nobody foresaw fails its own prompt, not the batch
            message = self._scrub(f"{type(exc).__name__}: {first_line(exc)}")
            log.warning("openai backend: unexpected error on one prompt: %s", message)
            result = PromptError(f"Unexpected error while handling the server's answer ({message}).")
        return result, (seen[-1] if seen else None)

    def _body(self, conversation: list[dict], params: SamplingParams, *, n: int, seed: int | None) -> dict:
        body: dict[str, Any] = {
            "model": self.model_name,
            "messages": [{"role": m["role"], "content": m["content"]} for m in conversation],
            "n": n,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_new_tokens,
        }
        if seed is not None:
            body["seed"] = seed
        if params.stop:
            body["stop"] = list(params.stop)
        body["presence_penalty"] = 0.0
        body["frequency_penalty"] = 0.0
        if self.send_top_k:
            # vLLM/TGI extensions: `vllm serve` fills every one left out from the model's
            # generation_config (Qwen: repetition_penalty 1.05, top_k 20...), so all are sent.
            body.update(top_k=params.top_k or -1, min_p=0.0, repetition_penalty=1.0)
        elif params.top_k:
            # A server that refuses top_k cannot apply it: refuse rather than record a cut not made.
            raise PromptError(
                "This endpoint does not send top_k (send_top_k is off), so a job with top_k cannot run on it."
            )
        return body

    def _request(
        self,
        conversation: list[dict],
        params: SamplingParams,
        *,
        n: int,
        seed: int | None,
        seen: list[tuple[float, str]] | None = None,
    ) -> list[Generation]:
        url = self.chat_url
        body = self._body(conversation, params, n=n, seed=seed)
        attempts = self.max_retries + 1
        last = ""
        not_json = 0
        for attempt in range(attempts):
            delay = self.backoff_s * (2**attempt) * (1 + random.random() * 0.25)
            try:
                status, payload, retry_after = self._post(url, body)
            except httpx.TimeoutException:
                last = f"The server did not answer within {self.timeout_s:g} s"
            except (httpx.TransportError, UnresolvableHost) as exc:
                last = f"Could not reach {self.base_url}: {self._scrub(str(exc) or type(exc).__name__)}"
            else:
                if status == 200 and isinstance(payload, _NotJSON):
                    # Cut short on the way (a proxy, a dropped connection)? Once more, then give up.
                    not_json += 1
                    if not_json > 1 or attempt == attempts - 1:
                        raise PromptError(
                            f"The server's answer is not JSON ({payload.reason}): {payload.start!r}"
                        )
                    last = "The server's answer was not JSON"
                elif status == 200:
                    gens = self._parse(payload, n)
                    version = _reported_version(payload)
                    if version and seen is not None:
                        seen.append((time.monotonic(), version))
                    return [g.with_version(version) for g in gens] if version else gens
                else:
                    message = _error_message(payload)
                    if status in RETRIED_STATUSES or status >= 500:
                        last = f"The server answered {status}: {message}"
                        if retry_after is not None:
                            delay = min(max(retry_after, delay), MAX_RETRY_AFTER_S)
                    elif status in (401, 403):
                        raise BackendConfigError(
                            f"The server at {self.base_url} refused the API key ({status}): {message}"
                        )
                    elif status == 404:
                        raise BackendConfigError(
                            f"{url} answered 404 ({message}): check the base URL and the model name "
                            f"{self.model_name!r}."
                        )
                    elif n > 1 and status in (400, 422):
                        raise _NRefused(PromptError(f"The server refused the request ({status}): {message}"))
                    else:
                        raise PromptError(f"The server refused this prompt ({status}): {message}")
            if attempt < attempts - 1:
                self._sleep(delay)
        raise PromptError(f"{last} (gave up after {attempts} attempts).", transient=True)

    def _post(self, url: str, body: dict) -> tuple[int, Any, float | None]:
        """``(status, payload, retry_after)``; the payload is a :class:`_NotJSON` when the body is
        not JSON. The whole request, connect to last byte, ends at ``timeout_s``."""
        target = check_url(url)
        deadline = time.monotonic() + self.timeout_s
        _deadline.at = deadline
        try:
            with self.client.stream(
                "POST", target.url, json=body, headers=target.headers, extensions=target.extensions
            ) as response:
                chunks = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        raise PromptError(
                            f"The server's answer is larger than {MAX_RESPONSE_BYTES // 2**20} MiB."
                        )
                    if time.monotonic() > deadline:
                        raise httpx.ReadTimeout("the whole request took longer than timeout_s")
                    chunks.append(chunk)
                status = response.status_code
                headers = response.headers
        finally:
            _deadline.at = None
        raw = self._scrub(b"".join(chunks))  # before any message is cut from it
        payload: Any
        try:
            payload = json.loads(raw) if raw else {}
        except RecursionError:
            payload = _NotJSON("nested too deep", raw)
        except ValueError as exc:
            payload = _NotJSON(first_line(exc), raw)
        retry_after = None
        if status in RETRIED_STATUSES or status >= 500:
            retry_after = _retry_after(headers.get("retry-after"))
        if 300 <= status < 400:
            payload = {"error": {"message": f"redirect to {headers.get('location', '?')} not followed"}}
        return status, payload, retry_after

    def _parse(self, payload: Any, n: int) -> list[Generation]:
        """The generations of a chat completion (PromptError if it is not one)."""
        try:
            choices = sorted(payload["choices"], key=lambda c: c.get("index", 0))
            usage = payload.get("usage")
            if not isinstance(usage, dict):  # absent, or not an object: the counts are unknown
                usage = {}
            prompt_tokens = usage.get("prompt_tokens")
            completion_tokens = usage.get("completion_tokens") if len(choices) == 1 else None
            gens = [
                Generation.from_native(
                    _content_text((choice.get("message") or {}).get("content")),
                    choice.get("finish_reason"),
                    prompt_tokens=token_count(prompt_tokens),
                    completion_tokens=token_count(completion_tokens),
                )
                for choice in choices
            ]
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise PromptError(
                f"The server's answer is not an OpenAI chat completion ({first_line(exc)[:300]})."
            ) from exc
        if not gens:
            raise PromptError("The server answered with no choices.")
        return gens


class _NotJSON:
    """A response body that is not JSON: why, and how it starts (to show)."""

    def __init__(self, reason: str, raw: bytes) -> None:
        self.reason = reason
        self.start = raw[:300].decode("utf-8", "replace")

    def __str__(self) -> str:
        return self.start


def _content_text(content: object) -> str:
    """A message's content: a string, null (no text: ""), or a list of text parts, joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("type") in ("text", "output_text"):
                if not isinstance(part.get("text"), str):
                    raise ValueError("a text part of the message content has no text")
                texts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise ValueError(f"the message content has a part of type {str(kind)[:50]!r}, not text")
        return "".join(texts)
    raise ValueError(f"the message content is a {type(content).__name__}, not text")


def _reported_version(payload: dict) -> str:
    """The version an answer reports (``system_fingerprint``, else ``model``): text only, made
    storable (a NUL or a lone surrogate becomes U+FFFD), at most 200 characters."""
    for key in ("system_fingerprint", "model"):
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            return storable_text(value)[:200]
    return ""


def _error_message(payload: Any) -> str:
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:500]
        if isinstance(error, str):
            return error[:500]
        if payload.get("detail"):
            return str(payload["detail"])[:500]
        if payload.get("message"):
            return str(payload["message"])[:500]
    return str(payload)[:300] or "no message"


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds, or as an HTTP date (seconds from now); None if absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by RFC 5322
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - time.time())


def build(model: str, config: dict) -> OpenAICompatBackend:
    return OpenAICompatBackend(model, **validate_config(config, resolve=False))
