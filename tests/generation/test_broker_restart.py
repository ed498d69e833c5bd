# ruff: noqa: F811 - the worker fixtures are imported from test_worker and requested by name
"""The broker restarts in the middle of a generation job: the worker reconnects and the job finishes
with every candidate exactly once.

Runs its own redis-server (append-only file on, as a production broker would be) on a free port, so
restarting it disturbs nothing else; the worker and the publisher point at it. A restart can lose the
message the worker was taking at that moment (its BRPOP returned, its write to the ``unacked`` hash
did not reach the broker): that lost a batch in CI once, and the job never finished. The test now
loses one message on purpose, and runs the beat sweep that sends such a batch again, as
``celery beat`` would (``generation.batches_requeue_orphaned``, reading Redis' queue lists).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from datetime import timedelta

import pytest
import redis

from generation import services
from generation.models import JobState
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
from tests.private_redis import free_port, redis_answers

pytestmark = REAL_WORKER_MARKS


@pytest.fixture
def private_redis(tmp_path, monkeypatch):
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    args = [server, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(tmp_path), "--appendonly", "yes",
            "--appendfsync", "always", "--save", ""]  # fmt: skip
    procs: list[subprocess.Popen] = []

    def start() -> None:
        procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if not redis_answers(redis.Redis(port=port, socket_connect_timeout=0.5)):
            pytest.fail("the private redis-server did not start")

    def restart() -> redis.Redis:
        redis.Redis(port=port).shutdown(nosave=False)  # writes the append-only file, then exits
        procs[-1].wait(timeout=30)
        time.sleep(1.0)  # the worker sees the broker gone
        start()
        return redis.Redis(port=port)

    start()
    monkeypatch.setattr(worker_tests, "BROKER_URL", f"redis://127.0.0.1:{port}/0")
    yield restart
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)


def test_job_survives_a_broker_restart(
    private_redis,
    research_project,
    tiny_endpoint,
    start_worker,
    publish_to_redis,
    settings,
):
    settings.CELERY_BROKER_URL = worker_tests.BROKER_URL  # the sweep reads the private broker
    prompts, k = 8, 2
    add_prompts(research_project, prompts)
    worker = start_worker("gen-worker-restart")
    job = services.job_create(
        project=research_project, endpoints=[tiny_endpoint], k=k, batch_size=1,
        sampling={"max_new_tokens": 16, "seed": 5},
    )  # fmt: skip
    _wait(lambda: _job_state(job.pk).done_units >= 2, timeout=240, procs=[worker], what="two batches done")
    broker = private_redis()  # broker down and up again, mid-job
    assert _job_state(job.pk).done_units < prompts, "the restart must land in the middle of the job"
    assert broker.rpop("generation") is not None, "a pending batch's message, lost in the restart"
    last_sweep = [0.0]

    def finished_with_the_sweep():  # the beat sweep, every 2 s: sends the lost batch again
        if time.monotonic() - last_sweep[0] > 2:
            last_sweep[0] = time.monotonic()
            services.batches_requeue_orphaned(older_than=timedelta(seconds=5))
        return _finished(job.pk)()

    job = _wait(
        finished_with_the_sweep, timeout=300, procs=[worker], what="the job to finish after the restart"
    )
    assert job.state == JobState.DONE
    _assert_exactly_once(job, prompts=prompts, k=k)
    assert worker.poll() is None, "the worker survived the restart"
