# ruff: noqa: F811 - the worker fixtures are imported from test_worker and requested by name
"""A worker is SIGKILLed mid-batch on Redis with the production visibility timeout (an hour): the
batch it held comes back through the beat sweep within minutes, not through Redis an hour later.

Redis gives a dead worker's unacknowledged message back only once the visibility timeout has
passed (``CELERY_VISIBILITY_TIMEOUT``, default 3600 s, kept long so that a long task is not handed
to a second worker while it still runs). The generation sweep does not wait for it: a pending batch
whose message is in no queue list (only in the dead worker's ``unacked`` entry) and that no worker
heartbeats is sent again. ``test_worker`` covers the other path (a short visibility timeout).
"""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import pytest

from annotate.models import Task
from generation import services
from generation.models import GenerationBatch, JobState
from tests.generation import test_worker as worker_tests
from tests.generation.conftest import add_prompts
from tests.generation.test_worker import (  # noqa: F401 - fixtures
    REAL_WORKER_MARKS,
    _assert_exactly_once,
    _finished,
    _job_state,
    _wait,
    postgres_db,
    publish_to_redis,
    redis_broker,
    start_worker,
    tiny_endpoint,
)

pytestmark = REAL_WORKER_MARKS


@pytest.fixture
def hour_visibility(monkeypatch):
    """Workers and this process's publisher with the production visibility timeout."""
    monkeypatch.setattr(worker_tests, "VISIBILITY_TIMEOUT_S", 3600)


def test_killed_worker_batch_comes_back_through_the_sweep_not_the_visibility_timeout(
    hour_visibility, research_project, tiny_endpoint, start_worker, publish_to_redis, redis_broker, settings
):
    settings.CELERY_BROKER_URL = worker_tests.BROKER_URL  # the sweep reads the test broker
    prompts, k = 6, 2
    add_prompts(research_project, prompts)
    first = start_worker("gen-worker-killed")
    job = services.job_create(
        project=research_project, endpoints=[tiny_endpoint], k=k, batch_size=1,
        sampling={"max_new_tokens": 32, "seed": 3}, auto_release="all",
    )  # fmt: skip

    def mid_batch():
        started = GenerationBatch.objects.filter(job=job, state="pending", attempts__gte=1).first()
        return _job_state(job.pk).done_units >= 1 and started

    _wait(mid_batch, timeout=240, procs=[first], what="the worker to be in a batch", interval=0.02)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert _job_state(job.pk).state == JobState.RUNNING
    # the dead worker's message: in its unacknowledged entry, given back by Redis only in an hour
    assert redis_broker.hlen("unacked") == 1

    second = start_worker("gen-worker-after")
    last_sweep = [0.0]

    def finished_with_the_sweep():  # the beat sweep, every 2 s
        if time.monotonic() - last_sweep[0] > 2:
            last_sweep[0] = time.monotonic()
            services.batches_requeue_orphaned(older_than=timedelta(seconds=5))
        return _finished(job.pk)()

    # within 4 minutes, where Redis alone would give the batch back after an hour
    job = _wait(finished_with_the_sweep, timeout=240, procs=[first, second], what="the job to finish")
    assert job.state == JobState.DONE
    assert (job.done_units, job.failed_units) == (prompts, 0)
    _assert_exactly_once(job, prompts=prompts, k=k)
    assert Task.objects.filter(generation_job=job).count() == prompts  # one pair per prompt, once
