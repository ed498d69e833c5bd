"""Transactional outbox for Celery: enqueue exactly when the transaction commits, and never lose it.

``outbox_enqueue(task_name, *args)`` writes an ``OutboxMessage`` row inside the caller's
transaction and registers an on-commit hook that sends it and deletes the row. If the send fails
(broker down) the row stays, with the error; ``outbox_flush`` (a periodic Celery beat task, and
callable by hand) re-sends rows older than a grace period. A message can be sent twice (sent, then
the process dies before the delete), so every task it names must be idempotent — ours are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from annotate.models import OutboxMessage

logger = logging.getLogger(__name__)


def _send(message_id: int, task_name: str, args: list, send: Callable[[], object] | None = None) -> bool:
    from config.celery import app

    try:
        if send is not None:
            send()
        else:
            app.send_task(task_name, args=args)
    except Exception as exc:
        logger.warning("enqueue of %s%s failed, will retry: %s", task_name, tuple(args), exc)
        OutboxMessage.objects.filter(pk=message_id).update(
            attempts=F("attempts") + 1, last_error=str(exc)[:2000]
        )
        return False
    OutboxMessage.objects.filter(pk=message_id).delete()
    return True


def outbox_enqueue(task_name: str, *args: object, send: Callable[[], object] | None = None) -> OutboxMessage:
    """Record a Celery message in the current transaction; it is sent after commit.

    ``send`` is how to send it the first time (e.g. ``lambda: my_task.delay(pk)``), default
    ``send_task(task_name, args)``; the sweep always uses ``send_task`` with the recorded name."""
    message = OutboxMessage.objects.create(task_name=task_name, args=list(args))
    transaction.on_commit(lambda: _send(message.pk, task_name, list(args), send))
    return message


def outbox_flush(*, older_than: timedelta = timedelta(seconds=30), limit: int = 500) -> int:
    """Send messages whose first send failed or never happened. Returns how many were sent."""
    cutoff = timezone.now() - older_than
    sent = 0
    for message in OutboxMessage.objects.filter(created_at__lte=cutoff).order_by("id")[:limit]:
        sent += _send(message.pk, message.task_name, message.args)
    return sent
