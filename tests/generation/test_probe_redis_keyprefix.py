# ruff: noqa: F811 - the fixtures are imported from other test modules and requested by name
"""The sweeps' reading of the Redis queue honours kombu's ``global_keyprefix`` transport option.

With a prefix (one Redis shared by several deployments, say) kombu keeps every queue list under
``<prefix><queue>``. messages_waiting read the unprefixed key (kombu's client prefixes LPUSH, BRPOP
and the like, not LRANGE), so it saw an empty queue: the sweeps sent again every job and batch whose
message was still queued, on every sweep (a long queue grew by its own backlog each time).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.outbox import messages_waiting
from generation import services
from generation.models import GenerationBatch
from tests.generation.conftest import add_prompts
from tests.generation.test_orphan_sweep import fake_endpoint_factory, sent  # noqa: F401
from tests.generation.test_worker import BROKER_URL, publish_to_redis, redis_broker  # noqa: F401

pytestmark = [pytest.mark.redis, pytest.mark.django_db]

BATCH_TASK = "generation.run_batch"
PREFIX = "prefhub-probe:"


@pytest.fixture
def on_prefixed_redis(redis_broker, publish_to_redis, settings):
    from config.celery import app

    options = {"visibility_timeout": 3600, "global_keyprefix": PREFIX}
    settings.CELERY_BROKER_URL = BROKER_URL
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = options
    app.conf.broker_transport_options = options
    return redis_broker


def _publish(task: str, arg: int, **options) -> None:
    from config.celery import app

    app.send_task(task, args=[arg], **options)


def test_messages_waiting_reads_the_prefixed_queue_lists(on_prefixed_redis):
    _publish(BATCH_TASK, 11)
    _publish(BATCH_TASK, 12, priority=9)
    assert on_prefixed_redis.llen(f"{PREFIX}generation") == 1  # where kombu put them
    assert on_prefixed_redis.llen("generation") == 0
    assert messages_waiting(BATCH_TASK) == {11, 12}


def test_a_queued_batch_is_not_sent_again_under_a_prefix(
    on_prefixed_redis, research_project, fake_endpoint_factory, sent, django_capture_on_commit_callbacks
):
    add_prompts(research_project, 2)
    job = services.job_create(
        project=research_project, endpoints=[fake_endpoint_factory()], k=2, batch_size=1, enqueue=False
    )
    GenerationBatch.objects.filter(job=job).update(created_at=timezone.now() - timedelta(minutes=10))
    queued, lost = GenerationBatch.objects.filter(job=job).order_by("index")
    _publish(BATCH_TASK, queued.pk)  # still waiting in the (prefixed) queue
    with django_capture_on_commit_callbacks(execute=True):
        assert services.batches_requeue_orphaned() == 1
    assert sent == [lost.pk]
