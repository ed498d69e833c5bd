"""Fixtures for the generation tests: the tiny offline model, a research project with prompts,
and a fake backend for service tests that need no model."""

from __future__ import annotations

import pytest

from annotate.models import Prompt
from annotate.services.projects import membership_add
from generation import backends
from generation.backends.base import FINISH_LENGTH, FINISH_STOP, Generation, PromptError
from tests.training.conftest import one_thread  # noqa: F401 - fixture (its one home)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """A tiny Llama with a trained tokenizer and a chat template, built offline once per session."""
    from generation.tiny_model import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-model")))


@pytest.fixture(scope="session")
def tiny_backend(tiny_model_path):
    from generation.backends.transformers import TransformersBackend

    return TransformersBackend(tiny_model_path, batch_size=16)


@pytest.fixture(autouse=True)
def _fresh_backend_cache():
    backends.clear_cache()
    yield
    backends.clear_cache()


def openai_endpoint(project, url: str, *, name: str = "oa", **config):
    """An ``openai`` endpoint ``name`` for model "m" at ``url`` (then ``config``) in ``project``,
    made by ``endpoint_create``: refused as the service refuses it."""
    from generation import services

    return services.endpoint_create(
        name=name, backend="openai", model="m", config={"base_url": url, **config}, project=project
    )


def openai_job_inline(project, url: str, *, k: int = 1, prompts: int = 2, **config):
    """A job of ``prompts`` prompts (``add_prompts``: q0, q1, ...; "number 1" is q1's text) on an
    ``openai`` endpoint at ``url`` (no retries, no backoff, then ``config``), ``k`` samples each,
    run here and now; the job, refreshed."""
    from annotate.services.tasks import PairMode
    from generation import services

    config = {"backoff_s": 0, "max_retries": 0, **config}
    endpoint = openai_endpoint(project, url, **config)
    add_prompts(project, prompts)
    job = services.job_create(
        project=project, endpoints=[endpoint], k=k, batch_size=prompts, enqueue=False, task_mode=PairMode.NONE
    )
    job = services.job_run_inline(job=job)
    job.refresh_from_db()
    return job


def add_prompts(project, count: int, *, tags=None, start: int = 0) -> list[Prompt]:
    return Prompt.objects.bulk_create(
        [
            Prompt(
                project=project,
                external_id=f"q{i}",
                messages=[{"role": "user", "content": f"Question number {i}?"}],
                tags=list(tags or []),
            )
            for i in range(start, start + count)
        ]
    )


@pytest.fixture
def researcher(make_user):
    return make_user("researcher")


@pytest.fixture
def research_project(make_project, researcher):
    project = make_project(name="Gen project")
    membership_add(project=project, user=researcher, role="researcher")
    return project


class FakeBackend:
    """Deterministic stand-in: ``fail`` maps a substring of the prompt to a PromptError;
    ``outputs`` (optional) maps (prompt text, sample index) to the Generation to return."""

    model_name = "fake"
    model_version = "fake-1"

    def __init__(self, fail: dict[str, PromptError] | None = None) -> None:
        self.fail = fail or {}
        self.outputs = None
        self.calls: list[tuple[int, object]] = []

    def generate(self, conversations, params):
        self.calls.append((len(conversations), params))
        out = []
        for conversation in conversations:
            content = conversation[-1]["content"]
            error = next((err for needle, err in self.fail.items() if needle in content), None)
            if error is not None:
                out.append(error)
                continue
            if self.outputs is not None:
                out.append([self.outputs(content, i) for i in range(params.n)])
                continue
            out.append(
                [
                    Generation(
                        text=f"answer {i} to {content}\x00\ud800",  # a NUL and half a UTF-16 pair
                        finish_reason=FINISH_STOP if i % 2 == 0 else FINISH_LENGTH,
                        prompt_tokens=5,
                        completion_tokens=7,
                    )
                    for i in range(params.n)
                ]
            )
        return out


@pytest.fixture
def fake_backend(monkeypatch):
    backend = FakeBackend()
    monkeypatch.setattr(backends, "get_backend", lambda endpoint: backend)
    return backend
