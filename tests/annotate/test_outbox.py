"""Transactional outbox: sent after commit, nothing sent on rollback, kept and re-sent when the
broker refuses."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from annotate.models import OutboxMessage
from core.outbox import outbox_enqueue, outbox_flush

pytestmark = pytest.mark.django_db(transaction=True)


class Broker:
    def __init__(self) -> None:
        self.up = True
        self.sent: list[tuple[str, list]] = []
        self.etas: list = []

    def send_task(self, name, args=None, **kwargs):
        if not self.up:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        self.sent.append((name, list(args or [])))
        self.etas.append(kwargs.get("eta"))


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


def test_a_message_with_a_countdown_carries_its_eta_and_the_sweep_waits_for_it(broker):
    """A judge job's extra pass comes back after a delay: the broker gets the message at once with
    its eta (the worker is free meanwhile); one the broker refused is re-sent only once it is due."""
    before = timezone.now()
    with transaction.atomic():
        message = outbox_enqueue("generation.judge_job_run", 5, countdown=15)
    assert before + timedelta(seconds=15) <= message.not_before <= timezone.now() + timedelta(seconds=15)
    assert broker.sent == [("generation.judge_job_run", [5])] and broker.etas == [message.not_before]
    assert OutboxMessage.objects.count() == 0

    broker.up = False
    with transaction.atomic():
        outbox_enqueue("generation.judge_job_run", 6, countdown=600)
    broker.up = True
    OutboxMessage.objects.update(created_at=timezone.now() - timedelta(minutes=1))
    assert outbox_flush() == 0  # not due yet: it stays in the outbox
    OutboxMessage.objects.update(not_before=timezone.now() - timedelta(seconds=1))
    assert outbox_flush() == 1 and broker.sent[-1] == ("generation.judge_job_run", [6])
    assert OutboxMessage.objects.count() == 0


def test_generation_job_enqueue_survives_a_broker_outage(
    broker, make_project, make_user, monkeypatch, tmp_path
):
    """A job created while the broker is down is not lost: its batches go out on the next sweep."""
    from annotate.models import Prompt
    from generation import services

    broker.up = False
    project = make_project()
    Prompt.objects.create(project=project, messages=[{"role": "user", "content": "hi"}])
    endpoint = services.endpoint_create(
        name="tiny", backend="transformers", model=str(tmp_path), project=project
    )
    job = services.job_create(project=project, endpoints=[endpoint], k=2, actor=make_user())
    pending = list(OutboxMessage.objects.values_list("task_name", "args"))
    assert pending and all(name == "generation.run_batch" for name, _ in pending)
    OutboxMessage.objects.update(created_at=timezone.now() - timedelta(minutes=1))
    broker.up = True
    assert outbox_flush() == len(pending)
    sent_batches = sorted(args[0] for _, args in broker.sent)
    assert sent_batches == sorted(job.batches.values_list("pk", flat=True))


def test_a_training_run_is_enqueued_through_the_outbox_by_task_name(
    broker, make_project, make_user, settings
):
    """Training runs used a bare on_commit, so a broker outage lost the run: now it waits in the
    outbox like every other enqueue."""
    from pathlib import Path

    from training.services.runs import run_create

    project = make_project()
    data = Path(settings.PREFHUB_DATA_DIR) / "datasets" / "outbox-run.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    broker.up = False
    run = run_create(
        project=project, kind="reward", base_model="tiny", dataset_path=str(data), actor=make_user()
    )
    message = OutboxMessage.objects.get()
    assert (message.task_name, message.args) == ("training.tasks.runs.run_execute", [run.pk])
    broker.up = True
    OutboxMessage.objects.update(created_at=timezone.now() - timedelta(minutes=1))
    assert outbox_flush() == 1
    assert broker.sent == [("training.tasks.runs.run_execute", [run.pk])]


def test_every_outboxed_task_name_is_a_registered_task():
    """Services name tasks as strings: each name they use must be one Celery knows."""
    import re
    from pathlib import Path

    from config.celery import app

    root = Path(__file__).resolve().parents[2]
    names = set()
    for path in root.glob("*/services*/**/*.py"):
        names |= set(re.findall(r'outbox_enqueue\(\s*"([\w.]+)"', path.read_text()))
    for path in root.glob("*/services.py"):
        names |= set(re.findall(r'outbox_enqueue\(\s*"([\w.]+)"', path.read_text()))
    app.loader.import_default_modules()
    assert names >= {"annotate.report_compute", "generation.run_batch", "training.export_run",
                     "training.tasks.runs.run_execute"}  # fmt: skip
    assert names <= set(app.tasks), names - set(app.tasks)


def test_no_service_imports_a_tasks_module():
    """Enqueueing by name removes the service <-> task import cycles: no service imports tasks."""
    import ast
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    offenders = []
    paths = [*root.glob("*/services.py"), *root.glob("*/services/*.py"), *root.glob("core/*.py")]
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            modules = []
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            offenders += [f"{path.relative_to(root)}: {m}" for m in modules if re.match(r"^\w+\.tasks\b", m)]
    assert offenders == []
