"""Transactional outbox: sent after commit, nothing sent on rollback, kept and re-sent when the
broker refuses."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from annotate.models import OutboxMessage
from annotate.services.outbox import outbox_enqueue, outbox_flush

pytestmark = pytest.mark.django_db(transaction=True)


class Broker:
    def __init__(self) -> None:
        self.up = True
        self.sent: list[tuple[str, list]] = []

    def send_task(self, name, args=None, **kwargs):
        if not self.up:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        self.sent.append((name, list(args or [])))


@pytest.fixture
def broker(monkeypatch):
    from config.celery import app

    fake = Broker()
    monkeypatch.setattr(app, "send_task", fake.send_task)
    return fake


def test_sent_after_commit_and_removed(broker):
    with transaction.atomic():
        outbox_enqueue("annotate.report_compute", 7)
        assert broker.sent == []  # nothing leaves before commit
    assert broker.sent == [("annotate.report_compute", [7])]
    assert OutboxMessage.objects.count() == 0


def test_nothing_sent_when_the_transaction_rolls_back(broker):
    with pytest.raises(RuntimeError), transaction.atomic():
        outbox_enqueue("annotate.report_compute", 8)
        raise RuntimeError("boom")
    assert broker.sent == [] and OutboxMessage.objects.count() == 0


def test_a_failed_enqueue_is_picked_up_again_by_the_sweep(broker):
    broker.up = False
    with transaction.atomic():
        outbox_enqueue("generation.run_batch", 42)
    message = OutboxMessage.objects.get()
    assert message.attempts == 1 and "Connection refused" in message.last_error
    assert outbox_flush() == 0  # too recent: a sender may still be at work
    broker.up = True
    OutboxMessage.objects.update(created_at=timezone.now() - timedelta(minutes=1))
    assert outbox_flush() == 1
    assert broker.sent == [("generation.run_batch", [42])]
    assert OutboxMessage.objects.count() == 0


def test_generation_job_enqueue_survives_a_broker_outage(
    broker, make_project, make_user, monkeypatch, tmp_path
):
    """A job created while the broker is down is not lost: its batches go out on the next sweep."""
    from annotate.models import Prompt
    from generation import services

    monkeypatch.setattr(
        services, "enqueue_batches", lambda ids: (_ for _ in ()).throw(ConnectionError("broker down"))
    )
    project = make_project()
    Prompt.objects.create(project=project, messages=[{"role": "user", "content": "hi"}])
    endpoint = services.endpoint_create(
        name="tiny", backend="transformers", model=str(tmp_path), project=project
    )
    job = services.job_create(project=project, endpoints=[endpoint], k=2, created_by=make_user())
    pending = list(OutboxMessage.objects.values_list("task_name", "args"))
    assert pending and all(name == "generation.run_batch" for name, _ in pending)
    OutboxMessage.objects.update(created_at=timezone.now() - timedelta(minutes=1))
    assert outbox_flush() == len(pending)
    sent_batches = sorted(args[0] for _, args in broker.sent)
    assert sent_batches == sorted(job.batches.values_list("pk", flat=True))
