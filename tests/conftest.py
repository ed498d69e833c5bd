"""Shared fixtures: users, projects with tasks, and helpers to build them quickly."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from annotate.models import Candidate, Prompt, TaskKind
from annotate.services.projects import membership_add, project_create
from annotate.services.tasks import TaskSpec, candidate_groups, tasks_bulk_create
from annotate.services.tokens import token_create

SHARED_DIR = Path(__file__).resolve().parent.parent.parent / "shared"
HH_SAMPLE = SHARED_DIR / "data" / "hh-rlhf" / "harmless-base-sample.jsonl.gz"
REFERENCE_DIR = SHARED_DIR / "reference"

_counter = itertools.count(1)

# Playwright's sync API runs an event loop in the test thread; Django refuses ORM calls from a
# thread with a running loop unless told this is deliberate (tests only).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def require_shared(path: Path) -> Path:
    """Skip (with the reason printed by -ra) when ../shared is not beside the checkout."""
    if not path.exists():
        pytest.skip(f"{path} is not present (../shared is only beside the project's own checkout)")
    return path


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture(autouse=True)
def _postgres_only(request):
    """Tests marked ``postgres`` (real row locks, concurrent sessions, PostgreSQL's statements)
    skip on SQLite, with the marker's ``reason`` when it gives one."""
    marker = request.node.get_closest_marker("postgres")
    if marker is not None and not is_postgres():
        pytest.skip(marker.kwargs.get("reason", "needs PostgreSQL (set DATABASE_URL)"))


# Hub names the tests use as placeholders for a base model: "downloaded" into the tests' offline
# cache (config.settings.test), since a run names a Hub model only if it is cached (core.paths).
PLACEHOLDER_HUB_MODELS = ("tiny", "t", "Qwen/Qwen2.5-0.5B-Instruct")


@pytest.fixture(scope="session", autouse=True)
def _offline_hub_cache():
    from django.conf import settings

    from tests.hub_cache import seed_hub_cache

    for repo_id in PLACEHOLDER_HUB_MODELS:
        seed_hub_cache(settings.PREFHUB_HF_HUB_CACHE, repo_id)


@pytest.fixture
def make_user(db):
    def _make(username: str | None = None, *, password: str = "pw-for-tests-123", **extra):
        username = username or f"user{next(_counter)}"
        return get_user_model().objects.create_user(username=username, password=password, **extra)

    return _make


@pytest.fixture
def make_project(db):
    def _make(*, kind: str = TaskKind.PAIRWISE, overlap: int = 1, dimensions=None, **settings):
        n = next(_counter)
        return project_create(
            name=settings.pop("name", f"Project {n}"),
            kind=kind,
            overlap=overlap,
            dimensions=dimensions or [],
            **settings,
        )

    return _make


def bearer(user, *, name: str = "test", **kw):
    """An API client that sends a fresh token of ``user`` (``token_create`` options in ``kw``)."""
    from rest_framework.test import APIClient

    _, secret = token_create(user=user, name=name, **kw)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def add_tasks(
    project,
    *,
    prompts: int,
    candidates_per_prompt: int = 2,
    mode: str | None = None,
    seed: int = 0,
    prefix: str = "p",
):
    """Create prompts with candidates and turn them into tasks (all pairs / one ranking). The prompts'
    external ids are ``prefix`` and their number (another prefix adds more to a project)."""
    import random

    mode = mode or ("ranking" if project.kind == TaskKind.RANKING else "all_pairs")
    rng = random.Random(seed)
    prompt_rows = Prompt.objects.bulk_create(
        [
            Prompt(
                project=project,
                external_id=f"{prefix}{i}",
                messages=[{"role": "user", "content": f"Question {i}?"}],
            )
            for i in range(prompts)
        ]
    )
    cands = Candidate.objects.bulk_create(
        [
            Candidate(prompt=p, text=f"Answer {j} to question {i}", model_name=f"model-{j}")
            for i, p in enumerate(prompt_rows)
            for j in range(candidates_per_prompt)
        ]
    )
    specs = []
    for i, p in enumerate(prompt_rows):
        ids = [c.pk for c in cands[i * candidates_per_prompt : (i + 1) * candidates_per_prompt]]
        for group in candidate_groups(ids, mode=mode, rng=rng, k=project.ranking_k):
            specs.append(TaskSpec(prompt_id=p.pk, candidate_ids=group))
    return tasks_bulk_create(project=project, specs=specs)


@pytest.fixture
def labeler_in(make_user):
    def _make(project, username: str | None = None, role: str = "labeler"):
        user = make_user(username)
        membership_add(project=project, user=user, role=role)
        return user

    return _make


# Browser fixtures for every test folder (one Playwright and one Chromium per session).
from tests.browser import _playwright, _warm_live_server, browser, new_page, page, screenshot  # noqa: E402, F401
from tests.zoo import minilm_path, zoo_model, zoo_path  # noqa: E402, F401


@pytest.fixture
def celery_eager():
    """Celery runs every task it is sent here and now (``task_always_eager``) for the test; yields
    the app."""
    from config.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = previous


@pytest.fixture
def embedded_queue(tmp_path, settings):
    """The embedded (filesystem) broker's queue folder, empty (every message taken by a worker), as
    the sweeps that look for lost messages read it; its path."""
    folder = tmp_path / "queue"
    folder.mkdir()
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(folder), "data_folder_out": str(folder)}
    return folder


@pytest.fixture
def stop_servers():
    """A list to put the test's started HTTP servers in (fake model servers): each is shut down
    and closed after the test."""
    started: list = []
    yield started
    for server in started:
        server.shutdown()
        server.server_close()
