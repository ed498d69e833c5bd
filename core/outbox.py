"""Transactional outbox for Celery: enqueue exactly when the transaction commits, and never lose it.

This is the one way a service enqueues work. ``outbox_enqueue(task_name, *args)`` writes an
``OutboxMessage`` row inside the caller's transaction and registers an on-commit hook that sends
it by task name and deletes the row. Services name their task as a string and never import their
``tasks`` module, so there is no service <-> task import cycle. If the send fails (broker down) the
row stays, with the error; ``outbox_flush`` (a periodic Celery beat task, and callable by hand)
re-sends rows older than a grace period. A message can be sent twice (sent, then the process dies
before the delete), so every task it names must be idempotent — ours are.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from annotate.models import OutboxMessage

logger = logging.getLogger(__name__)


def send_task(task_name: str, args: list) -> None:
    """Hand one message to Celery by name. With ``task_always_eager`` (tests, a synchronous demo)
    the registered task runs here and now, as ``delay`` would; otherwise it goes to the broker."""
    from config.celery import app

    if app.conf.task_always_eager:
        app.loader.import_default_modules()
        app.tasks[task_name].apply_async(args=args)
    else:
        app.send_task(task_name, args=args)


def _send(message_id: int, task_name: str, args: list) -> bool:
    try:
        send_task(task_name, args)
    except Exception as exc:
        logger.warning("enqueue of %s%s failed, will retry: %s", task_name, tuple(args), exc)
        OutboxMessage.objects.filter(pk=message_id).update(
            attempts=F("attempts") + 1, last_error=str(exc)[:2000]
        )
        return False
    OutboxMessage.objects.filter(pk=message_id).delete()
    return True


def outbox_enqueue(task_name: str, *args: object) -> OutboxMessage:
    """Record a Celery message for the task called ``task_name`` in the current transaction; it is
    sent after commit (and by the sweep, if that send fails)."""
    message = OutboxMessage.objects.create(task_name=task_name, args=list(args))
    transaction.on_commit(lambda: _send(message.pk, task_name, list(args)))
    return message


def outbox_flush(*, older_than: timedelta = timedelta(seconds=30), limit: int = 500) -> int:
    """Send messages whose first send failed or never happened. Returns how many were sent."""
    cutoff = timezone.now() - older_than
    sent = 0
    for message in OutboxMessage.objects.filter(created_at__lte=cutoff).order_by("id")[:limit]:
        sent += _send(message.pk, message.task_name, message.args)
    return sent
