"""Generation backends and the per-process factory.

``get_backend(endpoint)`` builds the backend an endpoint names (vllm, openai, transformers) and
keeps the most recently used few in a small per-process cache, so a Celery worker loads a model
once and reuses it for every batch; an endpoint whose settings change gets a fresh backend.
Backend modules import their heavy libraries (torch, transformers, vllm) only when built.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import re
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from generation.backends.base import (
    Backend,
    BackendConfigError,
    BackendError,
    Generation,
    InvalidSamplingParams,
    PromptError,
    SamplingParams,
    TransientBackendError,
)

if TYPE_CHECKING:
    from generation.models import ModelEndpoint

MODULES = {
    "transformers": "generation.backends.transformers",
    "vllm": "generation.backends.vllm",
    "openai": "generation.backends.openai_compat",
}

_cache: OrderedDict[tuple, Backend] = OrderedDict()
_lock = threading.Lock()


def backend_module(backend: str):
    try:
        return importlib.import_module(MODULES[backend])
    except KeyError:
        raise ValueError(f"Unknown backend {backend!r}; choose one of {', '.join(MODULES)}.") from None


def validate_config(backend: str, config: dict, **kwargs) -> dict:
    """Check an endpoint's backend settings (raises ValueError with a message for the user)."""
    if not isinstance(config, dict):
        raise ValueError("config must be a JSON object.")
    return backend_module(backend).validate_config(config, **kwargs)


#: Query parameters of a base URL that may carry a credential (``api_key``, Azure's ``api-key`` and
#: ``code``, ``token``, ``sig``...): the one place such a value could sit in an endpoint's config.
SECRET_QUERY_PARAM = re.compile(
    r"key|token|secret|pass|pw|auth|sig|credential|jwt|bearer|session|cookie|hmac|^code$", re.IGNORECASE
)


def _secret_param(name: str, value: str) -> bool:
    """Does the query parameter ``name=value`` look like a credential? Some servers also split a
    query on ``;``, so ``a=1;key=...`` (read here as ``a``) is ``key`` to them: each piece counts."""
    pieces = [name, *(piece.split("=", 1)[0] for piece in value.split(";")[1:])]
    return any(SECRET_QUERY_PARAM.search(piece) for piece in pieces)


def config_without_secrets(backend: str, config: dict) -> dict:
    """An endpoint's ``config`` with nothing in it that could be a secret, for copies that leave
    the server (project backups): only the backend's known settings (an API key is never one:
    ``api_key_env`` is the *name* of the variable holding it), and a base URL without the query
    parameters whose names look like credentials (``SECRET_QUERY_PARAM``; the rest are kept)."""
    module = backend_module(backend)
    known = getattr(module, "CONFIG_KEYS", ())
    out = {k: v for k, v in (config or {}).items() if k in known}
    if isinstance(out.get("base_url"), str):
        parts = urlsplit(out["base_url"])
        params = parse_qsl(parts.query, keep_blank_values=True)
        kept = [(k, v) for k, v in params if not _secret_param(k, v)]
        if len(kept) != len(params):  # else the URL stays exactly as it was
            out["base_url"] = urlunsplit(parts._replace(query=urlencode(kept)))
    return out


def cache_size() -> int:
    from django.conf import settings

    return max(1, int(getattr(settings, "PREFHUB_BACKEND_CACHE_SIZE", 1)))


def _key(endpoint: ModelEndpoint) -> tuple:
    return (endpoint.pk, endpoint.backend, endpoint.model, json.dumps(endpoint.config or {}, sort_keys=True))


def get_backend(endpoint: ModelEndpoint) -> Backend:
    """The endpoint's backend, built once per process (raises BackendConfigError if it cannot)."""
    key = _key(endpoint)
    with _lock:
        backend = _cache.get(key)
        if backend is not None:
            _cache.move_to_end(key)
            return backend
        # Loading a second model next to the first can run a GPU out of memory: evict first.
        while len(_cache) >= cache_size():
            _close(_cache.popitem(last=False)[1])
        try:
            backend = backend_module(endpoint.backend).build(endpoint.model, dict(endpoint.config or {}))
        except ValueError as exc:
            raise BackendConfigError(f"Endpoint {endpoint.name}: {exc}") from exc
        _cache[key] = backend
        return backend


def clear_cache() -> None:
    with _lock:
        while _cache:
            _close(_cache.popitem(last=False)[1])


def _close(backend: Backend) -> None:
    close = getattr(backend, "close", None)
    if callable(close):
        with contextlib.suppress(Exception):  # best effort: the backend is being dropped anyway
            close()


__all__ = [
    "Backend",
    "BackendConfigError",
    "BackendError",
    "Generation",
    "InvalidSamplingParams",
    "PromptError",
    "SamplingParams",
    "TransientBackendError",
    "backend_module",
    "clear_cache",
    "get_backend",
    "validate_config",
]
