"""Transactional outbox for Celery: enqueue exactly when the transaction commits, and never lose it.

This is the one way a service enqueues work. ``outbox_enqueue(task_name, *args)`` writes an
``OutboxMessage`` row inside the caller's transaction and registers an on-commit hook that sends
it by task name and deletes the row. Services name their task as a string and never import their
``tasks`` module, so there is no service <-> task import cycle. If the send fails (broker down) the
row stays, with the error; ``outbox_flush`` (a periodic Celery beat task, and callable by hand)
re-sends rows older than a grace period. A message can be sent twice (sent, then the process dies
before the delete), so every task it names must be idempotent — ours are.

A message may wait: ``outbox_enqueue(..., countdown=s)`` records a not-before time and hands it to
Celery as the message's ``eta``, so the worker that receives it runs it then (and is free
meanwhile); the sweep sends a row that is still here only once it is due.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from datetime import datetime, timedelta
from pathlib import Path

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from annotate.models import OutboxMessage

logger = logging.getLogger(__name__)


def send_task(task_name: str, args: list, *, eta: datetime | None = None) -> None:
    """Hand one message to Celery by name, to run at ``eta`` or as soon as a worker takes it. With
    ``task_always_eager`` (tests, a synchronous demo) the registered task runs here and now, as
    ``delay`` would (without waiting for ``eta``); otherwise it goes to the broker."""
    from config.celery import app

    when = {"eta": eta} if eta is not None else {}
    if app.conf.task_always_eager:
        app.loader.import_default_modules()
        app.tasks[task_name].apply_async(args=args, **when)
    else:
        app.send_task(task_name, args=args, **when)


def _send(message_id: int, task_name: str, args: list, eta: datetime | None = None) -> bool:
    try:
        if eta is None:
            send_task(task_name, args)
        else:
            send_task(task_name, args, eta=eta)
    except Exception as exc:
        logger.warning("enqueue of %s%s failed, will retry: %s", task_name, tuple(args), exc)
        OutboxMessage.objects.filter(pk=message_id).update(
            attempts=F("attempts") + 1, last_error=str(exc)[:2000]
        )
        return False
    OutboxMessage.objects.filter(pk=message_id).delete()
    return True


def outbox_enqueue(task_name: str, *args: object, countdown: float | None = None) -> OutboxMessage:
    """Record a Celery message for the task called ``task_name`` in the current transaction; it is
    sent after commit (and by the sweep, if that send fails). With ``countdown`` (seconds) the task
    runs no sooner than that after now: the message carries it as its ``eta``."""
    not_before = timezone.now() + timedelta(seconds=countdown) if countdown is not None else None
    message = OutboxMessage.objects.create(task_name=task_name, args=list(args), not_before=not_before)
    transaction.on_commit(lambda: _send(message.pk, task_name, list(args), not_before))
    return message


def outbox_flush(*, older_than: timedelta = timedelta(seconds=30), limit: int = 500) -> int:
    """Send messages whose first send failed or never happened (and that are due). Returns how many
    were sent."""
    now = timezone.now()
    due = OutboxMessage.objects.filter(created_at__lte=now - older_than).filter(
        Q(not_before__isnull=True) | Q(not_before__lte=now)
    )
    sent = 0
    for message in due.order_by("id")[:limit]:
        sent += _send(message.pk, message.task_name, message.args)
    return sent


def _first_arg(raw: bytes | str, task_name: str) -> int | None:
    """The first argument of a Celery (protocol 2) message as kombu stores it, in a queue folder's
    file or a Redis list; None for another task's message or one that is not ours to read."""
    try:
        message = json.loads(raw)
        if message.get("headers", {}).get("task") != task_name:
            return None
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        return int(json.loads(body)[0][0])
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None


def _in_queue_folder(task_name: str, folder: Path) -> set[int]:
    waiting: set[int] = set()
    for path in folder.glob("*.msg"):
        try:
            raw = path.read_bytes()
        except OSError:
            continue  # consumed meanwhile
        arg = _first_arg(raw, task_name)
        if arg is not None:
            waiting.add(arg)
    return waiting


def _in_redis_lists(task_name: str, url: str, options: dict) -> set[int] | None:
    """The messages for ``task_name`` still in its queue's Redis lists (one per priority step, as
    kombu keeps them); None when Redis cannot be read. Read in slices, so a long queue is never
    held in memory whole. The connection is Celery's own (``connection_for_write``: the workers'
    TLS, login and transport options), the sweep's timeouts added."""
    from config.celery import app

    queue = app.amqp.router.route({}, task_name)["queue"].name
    waiting: set[int] = set()
    try:
        # kombu's Redis transport takes its timeouts from the transport options (not from
        # connect_timeout): without them a broker that never answers holds the sweep's worker
        timeouts = {"socket_connect_timeout": 2, "socket_timeout": 10}
        transport_options = {**timeouts, **options, "max_retries": 0}
        with app.connection_for_write(url, transport_options=transport_options) as connection:
            channel = connection.default_channel
            client, size = channel.client, 1000
            keys = [queue] + [f"{queue}{channel.sep}{step}" for step in channel.priority_steps if step]
            if "LRANGE" not in getattr(client, "PREFIXED_SIMPLE_COMMANDS", ["LRANGE"]):
                # kombu's client adds ``global_keyprefix`` to the keys of the commands it sends
                # (LPUSH, BRPOP...), not LRANGE's: name the lists as kombu keeps them
                keys = [channel.global_keyprefix + key for key in keys]
            for key in keys:
                start = 0
                while chunk := client.lrange(key, start, start + size - 1):
                    waiting.update(a for a in (_first_arg(raw, task_name) for raw in chunk) if a is not None)
                    start += size
    except Exception as exc:  # unreachable or not Redis after all: the sweep cannot tell, so it waits
        logger.warning("cannot read the broker's queue %r: %s", queue, exc)
        return None
    return waiting


def messages_waiting(task_name: str) -> set[int] | None:
    """The first argument (a row id) of every message for ``task_name`` that no worker has taken:
    still in the outbox, or in the broker's queue (the embedded broker's queue folder, or Redis's
    lists). The beat sweeps send again the work whose message is gone
    (``core.jobs.jobs_resume_stalled``, generation's orphaned batches): a worker that dies (or is
    stopped) mid-task takes the embedded broker's message with it, and on Redis a message taken in
    the moment the broker went down is lost, and one a worker dropped on a lost connection comes
    back only after the visibility timeout (an hour by default). A message a worker holds (Redis's
    ``unacked`` hash) does not count: the work it carries shows a heartbeat while it runs. None
    when the broker cannot be read (down, or another kind, such as RabbitMQ, that redelivers a
    lost channel's messages at once): the sweeps then send nothing."""
    from django.conf import settings

    url = settings.CELERY_BROKER_URL
    redis = url.startswith(("redis://", "rediss://", "redis+socket://"))
    if not redis and not url.startswith("filesystem://"):
        return None
    # The outbox first: a message sent from it while the broker is read is then in the queue.
    in_outbox: set[int] = set()
    for args in OutboxMessage.objects.filter(task_name=task_name).values_list("args", flat=True):
        with contextlib.suppress(IndexError, KeyError, TypeError, ValueError):
            in_outbox.add(int(args[0]))
    if redis:
        in_broker = _in_redis_lists(task_name, url, settings.CELERY_BROKER_TRANSPORT_OPTIONS)
        if in_broker is None:
            return None
    else:
        in_broker = _in_queue_folder(
            task_name, Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        )
    return in_broker | in_outbox
