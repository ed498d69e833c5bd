# ruff: noqa: F811 - the fixtures are imported from other test modules and requested by name
"""messages_waiting sees a message that moves from the outbox to the broker while it reads.

It read the broker's queue first and the outbox after: a message the outbox sweep (or an on-commit
hook) sent in between was in neither when looked at, so the beat sweep took its work for lost and
sent it a second time. Reading the outbox first cannot miss it: a row gone by then is already
in the queue the sweep reads next.
"""

from __future__ import annotations

import pytest

from annotate.models import OutboxMessage
from core import outbox
from tests.generation.test_redis_lost_messages import on_redis  # noqa: F401
from tests.generation.test_worker import publish_to_redis, redis_broker  # noqa: F401

pytestmark = [pytest.mark.redis, pytest.mark.django_db]

BATCH_TASK = "generation.run_batch"


def test_a_message_sent_from_the_outbox_during_the_read_is_still_waiting(on_redis, monkeypatch):
    row = OutboxMessage.objects.create(task_name=BATCH_TASK, args=[41])  # its first send failed
    read_queue = outbox._in_redis_lists

    def read_then_flush(*args, **kwargs):
        found = read_queue(*args, **kwargs)
        outbox._send(row.pk, row.task_name, row.args)  # the outbox sweep sends it meanwhile
        return found

    monkeypatch.setattr(outbox, "_in_redis_lists", read_then_flush)
    assert outbox.messages_waiting(BATCH_TASK) == {41}
    assert not OutboxMessage.objects.exists() and on_redis.llen("generation") == 1
