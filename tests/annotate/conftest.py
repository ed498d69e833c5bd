"""Fixtures shared by the annotate tests."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from tests.annotate import judge_fakesrv as fakesrv
from tests.conftest import add_tasks
from tests.generation.conftest import tiny_model_path  # noqa: F401 (session fixture: the judge tests)


@pytest.fixture
def servers(settings, stop_servers):
    """``servers(**kw)``: a scripted fake judge server (``judge_fakesrv.start``) that model hosts on
    loopback may reach, stopped after the test; returns ``(url, state)``."""
    settings.PREFHUB_ALLOWED_MODEL_HOSTS = ["127.0.0.1"]

    def _start(**kw):
        server, url, state = fakesrv.start(**kw)
        stop_servers.append(server)
        return url, state

    return _start


@pytest.fixture
def labelers_on(make_project, labeler_in):
    """``labelers_on(n, prompts=k, **settings)``: a project (``make_project(**settings)``) with ``k``
    prompts turned into tasks, then ``n`` labelers in it; returns ``(project, labeler_1, ...)``."""

    def _make(n: int, *, prompts: int, **settings):
        project = make_project(**settings)
        add_tasks(project, prompts=prompts)
        return (project, *(labeler_in(project) for _ in range(n)))

    return _make


@pytest.fixture
def token_cache(settings):
    """API token lookups cached for 60 s, in a cache emptied before and after the test."""
    cache.clear()
    settings.API_TOKEN_CACHE_SECONDS = 60
    yield
    cache.clear()
