"""The beat sweep that re-sends pending batches whose message died with a worker (embedded
filesystem broker): which batches it sends again, and which it leaves alone."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from generation import services
from generation.models import GenerationBatch, JobState
from tests.generation.conftest import add_prompts

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue_folder(embedded_queue):
    return embedded_queue


@pytest.fixture
def sent(monkeypatch):
    ids: list[int] = []
    monkeypatch.setattr(services, "_enqueue_on_commit", lambda batch_ids: ids.extend(batch_ids))
    return ids


def _message(folder, batch_id: int) -> None:
    """A message as kombu's filesystem transport stores it (Celery protocol 2, base64 body)."""
    body = base64.b64encode(json.dumps([[batch_id], {}, {}]).encode()).decode()
    payload = {
        "body": body,
        "headers": {"task": "generation.run_batch", "id": "x"},
        "properties": {"body_encoding": "base64"},
    }
    (folder / f"1_{batch_id}.generation.msg").write_text(json.dumps(payload))


@pytest.fixture
def old_job(research_project, fake_endpoint_factory):
    add_prompts(research_project, 4)
    job = services.job_create(
        project=research_project, endpoints=[fake_endpoint_factory()], k=2, batch_size=1, enqueue=False
    )
    GenerationBatch.objects.filter(job=job).update(created_at=timezone.now() - timedelta(minutes=10))
    return job


@pytest.fixture
def fake_endpoint_factory():
    return lambda: services.endpoint_create(
        name="sweep-ep", backend="openai", model="m", config={"base_url": "https://models.example.org/v1"}
    )


def test_sweep_sends_only_orphans(old_job, queue_folder, sent, django_capture_on_commit_callbacks):
    b0, b1, b2, b3 = GenerationBatch.objects.filter(job=old_job).order_by("index")
    _message(queue_folder, b1.pk)  # still queued: live
    GenerationBatch.objects.filter(pk=b2.pk).update(heartbeat_at=timezone.now())  # a worker is on it
    GenerationBatch.objects.filter(pk=b3.pk).update(state="done")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.batches_requeue_orphaned() == 1
    assert sent == [b0.pk]
    b0.refresh_from_db()
    assert b0.enqueued_at is not None
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):  # just re-sent: not again at once
        assert services.batches_requeue_orphaned() == 0
    assert sent == []


def test_sweep_leaves_young_batches_and_ended_jobs(old_job, queue_folder, sent):
    GenerationBatch.objects.filter(job=old_job).update(created_at=timezone.now())
    assert services.batches_requeue_orphaned() == 0
    GenerationBatch.objects.filter(job=old_job).update(created_at=timezone.now() - timedelta(hours=1))
    old_job.state = JobState.CANCELLED
    old_job.save(update_fields=["state"])
    assert services.batches_requeue_orphaned() == 0
