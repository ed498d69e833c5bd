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
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

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
