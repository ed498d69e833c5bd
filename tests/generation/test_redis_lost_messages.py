# ruff: noqa: F811 - the fixtures are imported from other test modules and requested by name
"""On Redis too, the beat sweeps send again the work whose message is gone.

Redis keeps a message a worker took in its ``unacked`` hash and gives it back once the visibility
timeout (an hour by default) has passed, but not always: a message can vanish in the moment
between the worker's BRPOP and its write to that hash (a broker restart there lost a generation
batch in CI, and the job never finished), and one a worker dropped on a lost connection waits for
that hour. The sweeps used to do nothing on Redis; now they read the broker's queue lists as they
read the embedded broker's folder: a message still in a list is left to the broker, work with none
is sent again (safe when wrong: every job and batch runs once however often it is sent).
"""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from annotate.models import JudgeJob, OutboxMessage
from core.jobs import jobs_resume_stalled
from core.outbox import messages_waiting
from generation import services
from generation.models import GenerationBatch
from tests.annotate.test_jobs_resume import JUDGE_TASK, queue_folder, taken_job  # noqa: F401
from tests.generation.test_orphan_sweep import fake_endpoint_factory, old_job, sent  # noqa: F401
from tests.generation.test_worker import BROKER_URL, publish_to_redis, redis_broker  # noqa: F401

pytestmark = [pytest.mark.redis, pytest.mark.django_db]

BATCH_TASK = "generation.run_batch"


@pytest.fixture
def on_redis(redis_broker, publish_to_redis, settings):
    """This process's settings and Celery app on the test Redis db (emptied); the Redis client."""
    settings.CELERY_BROKER_URL = BROKER_URL
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    return redis_broker


def _publish(task: str, arg: int, **options) -> None:
    from config.celery import app

    app.send_task(task, args=[arg], **options)


def _taken_by_a_worker(client, queue: str) -> None:
    """Move the oldest message of ``queue`` into the ``unacked`` hash, as a worker's BRPOP plus
    its QoS write do (a worker that then dropped it, or died)."""
    raw = client.rpop(queue)
    assert raw is not None, f"no message in {queue!r}"
    client.zadd("unacked_index", {"tag-1": timezone.now().timestamp()})
    client.hset("unacked", "tag-1", json.dumps([json.loads(raw), "", queue]))


def test_messages_waiting_reads_the_redis_queue_lists(on_redis):
    _publish(BATCH_TASK, 11)
    _publish(BATCH_TASK, 12, priority=9)  # kombu keeps it in another list ("generation\x06\x169")
    _publish(BATCH_TASK, 13)
    _publish("annotate.outbox_flush", 14)  # another task's message, on another queue
    _taken_by_a_worker(on_redis, "generation")  # 11: no longer waiting in the queue
    assert messages_waiting(BATCH_TASK) == {12, 13}
    assert messages_waiting("annotate.outbox_flush") == {14}


def test_messages_waiting_counts_the_outbox_on_redis(on_redis, django_capture_on_commit_callbacks):
    OutboxMessage.objects.create(task_name=BATCH_TASK, args=[21])  # its send failed: still here
    assert messages_waiting(BATCH_TASK) == {21}


def test_the_generation_sweep_sends_again_the_batches_redis_lost(
    on_redis, old_job, sent, django_capture_on_commit_callbacks
):
    b0, b1, b2, b3 = GenerationBatch.objects.filter(job=old_job).order_by("index")
    _publish(BATCH_TASK, b0.pk)
    _publish(BATCH_TASK, b1.pk)  # queued: the broker delivers it
    _publish(BATCH_TASK, b2.pk, priority=9)  # queued too, in the priority list
    _taken_by_a_worker(on_redis, "generation")  # b0: taken, then dropped (no heartbeat)
    # b3: its message vanished altogether (taken in the moment the broker went down). A batch a
    # worker heartbeats is left alone whatever the broker: test_orphan_sweep.
    with django_capture_on_commit_callbacks(execute=True):
        assert services.batches_requeue_orphaned() == 2
    assert sorted(sent) == [b0.pk, b3.pk]


def test_a_stalled_judge_job_with_no_message_on_redis_is_sent_again(taken_job, on_redis):
    lost, queued = taken_job(), taken_job()
    _publish(JUDGE_TASK, queued.pk)
    assert jobs_resume_stalled(JudgeJob) == [lost.pk]
    assert sorted(m.args[0] for m in OutboxMessage.objects.filter(task_name=JUDGE_TASK)) == [lost.pk]


def test_an_unreachable_redis_sends_nothing(old_job, settings, sent, taken_job):
    """The sweep cannot tell what is queued: it leaves everything (the sends would fail anyway)."""
    taken_job()
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    assert messages_waiting(BATCH_TASK) is None
    assert services.batches_requeue_orphaned() == 0 and sent == []
    assert jobs_resume_stalled(JudgeJob) == []


def test_another_broker_is_left_to_itself(old_job, settings, sent):
    settings.CELERY_BROKER_URL = "amqp://guest@127.0.0.1:5672//"  # RabbitMQ redelivers on a lost channel
    assert messages_waiting(BATCH_TASK) is None
    assert services.batches_requeue_orphaned() == 0 and sent == []
