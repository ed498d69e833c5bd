"""Backend for any OpenAI-compatible chat server (``vllm serve``, TGI, llama.cpp, hosted APIs).

``POST {base_url}/chat/completions`` with ``n=k`` (all samples of a prompt in one request), the
seed and stop strings. If the server refuses ``n > 1`` the backend falls back to k requests of one
sample each (seeds ``seed, seed+1, ...``) and remembers that for the rest of its life.

* Concurrency: a thread pool of ``concurrency`` requests in flight (one ``httpx.Client``).
* Timeouts: ``timeout_s`` per request (connect capped at 10 s).
* Retries: 5xx, 429 (honouring Retry-After), timeouts and connection errors are retried
  ``max_retries`` times with exponential backoff (``backoff_s * 2**attempt``, jittered); after
  that the prompt fails with ``transient=True``.
* 4xx: 401/403 (key refused) and 404 (wrong URL or model) fail the whole endpoint with
  BackendConfigError; 400/422 fail that prompt with the server's own message.
* The API key comes from the environment variable *named* in ``api_key_env``; it is never stored.
  Only variables named ``PREFHUB_KEY_*`` can be used, so an endpoint cannot be made to send a
  worker's other secrets (DJANGO_SECRET_KEY, DATABASE_URL...) to a server of its choosing.
* Every URL goes through :mod:`generation.backends.urlguard` (no internal addresses unless the
  host is allowed), redirects are not followed and responses are capped in size.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from generation.backends.base import (
    BackendConfigError,
    Generation,
    PromptError,
    SamplingParams,
    check_conversation,
)
from generation.backends.urlguard import UnresolvableHost, UnsafeURL, check_url

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


def normalise_base_url(base_url: str) -> str:
    """``http://host:8000`` and ``http://host:8000/v1/`` both become ``http://host:8000/v1``."""
    url = base_url.strip().rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def validate_config(config: dict, *, resolve: bool = True) -> dict:
    """Check an endpoint's config; ``resolve`` also checks where the base URL's host resolves."""
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(f"Unknown openai setting(s): {', '.join(unknown)}. Known: {', '.join(CONFIG_KEYS)}.")
    out = dict(config)
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
        check_url(self.base_url, resolve=False)  # scheme, credentials, literal IPs; each request resolves
        self.concurrency = concurrency
        self.timeout_s = float(timeout_s)
        self.max_retries = max_retries
        self.backoff_s = float(backoff_s)
        self.send_top_k = send_top_k
        self._sleep = sleep
        self._n_supported = True
        self._lock = threading.Lock()
        headers = {"Accept": "application/json", "User-Agent": "prefhub-generation"}
        if api_key_env:
            try:
                check_key_env(api_key_env)
            except ValueError as exc:
                raise BackendConfigError(str(exc)) from exc
            key = os.environ.get(api_key_env)
            if not key:
                raise BackendConfigError(
                    f"The environment variable {api_key_env} (the API key) is not set on this worker."
                )
            headers["Authorization"] = f"Bearer {key}"
        self.client = httpx.Client(
            timeout=httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 10.0)),
            follow_redirects=False,
            headers=headers,
            trust_env=False,
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
            futures = [pool.submit(self._one, conversation, params) for conversation in conversations]
            return [future.result() for future in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    # -- internals ---------------------------------------------------------------------------
    def _one(self, conversation: list[dict], params: SamplingParams) -> list[Generation] | PromptError:
        try:
            check_conversation(conversation)
            gens: list[Generation] = []
            if params.n > 1 and self._n_supported:
                try:
                    gens = self._request(conversation, params, n=params.n, seed=params.seed)[: params.n]
                except _NRefused:
                    # Try one sample; if that is refused too, its PromptError is the answer.
                    gens = self._request(conversation, params, n=1, seed=params.seed)
                    with self._lock:
                        self._n_supported = False
            while len(gens) < params.n:
                seed = None if params.seed is None else params.seed + len(gens)
                gens.extend(self._request(conversation, params, n=1, seed=seed)[:1])
            return gens
        except PromptError as err:
            return err

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
        self, conversation: list[dict], params: SamplingParams, *, n: int, seed: int | None
    ) -> list[Generation]:
        url = f"{self.base_url}/chat/completions"
        body = self._body(conversation, params, n=n, seed=seed)
        attempts = self.max_retries + 1
        last = ""
        for attempt in range(attempts):
            delay = self.backoff_s * (2**attempt) * (1 + random.random() * 0.25)
            try:
                status, payload = self._post(url, body)
            except httpx.TimeoutException:
                last = f"The server did not answer within {self.timeout_s:g} s"
            except (httpx.TransportError, UnresolvableHost) as exc:
                last = f"Could not reach {self.base_url}: {exc or type(exc).__name__}"
            else:
                if status == 200:
                    return self._parse(payload, n)
                message = _error_message(payload)
                if status == 429 or status >= 500:
                    last = f"The server answered {status}: {message}"
                    retry_after = payload.get("_retry_after") if isinstance(payload, dict) else None
                    if retry_after is not None:
                        delay = min(max(retry_after, delay), MAX_RETRY_AFTER_S)
                elif status in (401, 403):
                    raise BackendConfigError(
                        f"The server at {self.base_url} refused the API key ({status}): {message}"
                    )
                elif status == 404:
                    raise BackendConfigError(
                        f"{url} answered 404 ({message}): check the base URL and the model name {self.model_name!r}."
                    )
                elif n > 1 and status in (400, 422):
                    raise _NRefused(PromptError(f"The server refused the request ({status}): {message}"))
                else:
                    raise PromptError(f"The server refused this prompt ({status}): {message}")
            if attempt < attempts - 1:
                self._sleep(delay)
        raise PromptError(f"{last} (gave up after {attempts} attempts).", transient=True)

    def _post(self, url: str, body: dict) -> tuple[int, Any]:
        target = check_url(url)
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
                chunks.append(chunk)
            raw = b"".join(chunks)
            try:
                payload: Any = json.loads(raw) if raw else {}
            except ValueError:
                payload = {"error": {"message": raw[:300].decode("utf-8", "replace")}}
            if response.status_code == 429 or response.status_code >= 500:
                retry_after = _retry_after(response.headers.get("retry-after"))
                if retry_after is not None and isinstance(payload, dict):
                    payload["_retry_after"] = retry_after
            if 300 <= response.status_code < 400:
                payload = {
                    "error": {"message": f"redirect to {response.headers.get('location', '?')} not followed"}
                }
            return response.status_code, payload

    def _parse(self, payload: Any, n: int) -> list[Generation]:
        try:
            choices = sorted(payload["choices"], key=lambda c: c.get("index", 0))
            usage = payload.get("usage") or {}
            prompt_tokens = usage.get("prompt_tokens")
            completion_tokens = usage.get("completion_tokens") if len(choices) == 1 else None
            if not self.model_version and payload.get("model"):
                self.model_version = str(payload.get("system_fingerprint") or payload["model"])[:200]
            gens = [
                Generation.from_native(
                    (choice.get("message") or {}).get("content") or "",
                    choice.get("finish_reason"),
                    prompt_tokens=prompt_tokens if isinstance(prompt_tokens, int) else None,
                    completion_tokens=completion_tokens if isinstance(completion_tokens, int) else None,
                )
                for choice in choices
            ]
        except (KeyError, TypeError, AttributeError) as exc:
            raise PromptError(f"The server's answer is not an OpenAI chat completion ({exc!r}).") from exc
        if not gens:
            raise PromptError("The server answered with no choices.")
        return gens


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
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def build(model: str, config: dict) -> OpenAICompatBackend:
    return OpenAICompatBackend(model, **validate_config(config, resolve=False))
