"""Real Celery worker processes on Redis, sharing the PostgreSQL test database.

* A job with the tiny model through the transformers backend runs on a worker started as
  ``celery -A config worker -Q generation -c 1 --pool prefork``; candidates and tasks land in
  the database, a too-long prompt fails alone.
* A worker is SIGKILLed in the middle of a job; a second worker, started after the broker's
  (short) visibility timeout, gets the unacknowledged batch again and finishes the job with every
  candidate exactly once and the tasks created once.
* The same kill with the production visibility timeout (an hour, kept long so that a long task is
  not handed to a second worker while it still runs): the batch comes back within minutes through
  the beat sweep (``generation.batches_requeue_orphaned``), which sends again a pending batch whose
  message is in no Redis queue list (only in the dead worker's ``unacked`` entry) and that no worker
  heartbeats. Before, the sweep did nothing on Redis and the job waited for the hour.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Count

from annotate.models import Candidate, Prompt, Task
from generation import services
from generation.models import GenerationBatch, GenerationFailure, GenerationJob, JobState
from tests.generation.conftest import add_prompts

#: The marks of a test with a real worker process: it needs Redis and PostgreSQL, takes its time,
#: and commits what the worker (another process, another connection) must read.
REAL_WORKER_MARKS = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]
pytestmark = REAL_WORKER_MARKS

REPO = Path(__file__).resolve().parents[2]
REDIS_DB = int(os.environ.get("PREFHUB_TEST_REDIS_DB", "13"))
REDIS_HOST = os.environ.get("PREFHUB_TEST_REDIS_HOST", "127.0.0.1:6379")
BROKER_URL = f"redis://{REDIS_HOST}/{REDIS_DB}"
VISIBILITY_TIMEOUT_S = 3


def _celery_bin() -> str:
    candidate = Path(sys.executable).parent / "celery"
    return str(candidate) if candidate.exists() else "celery"


@pytest.fixture
def redis_broker():
    import redis

    client = redis.Redis.from_url(BROKER_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"Redis is not reachable at {REDIS_HOST}: {exc}")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def postgres_db(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL): worker processes share the test database")
    return connection.settings_dict


@pytest.fixture
def publish_to_redis(redis_broker):
    """Point this process's Celery app at the test Redis db (it publishes on job_create)."""
    from kombu import pools

    from config.celery import app

    def reset_pools():
        pools.reset()  # closes and forgets kombu's pooled connections and producers
        app._pool = None
        app.amqp._producer_pool = None

    old = (app.conf.broker_url, app.conf.broker_transport, app.conf.broker_transport_options)
    reset_pools()
    app.conf.broker_url = BROKER_URL
    app.conf.broker_transport = None  # the URL's (the settings name the embedded broker's without Redis)
    app.conf.broker_transport_options = {"visibility_timeout": VISIBILITY_TIMEOUT_S}
    yield
    reset_pools()
    app.conf.broker_url, app.conf.broker_transport, app.conf.broker_transport_options = old


def database_url(settings: dict) -> str:
    """The URL of the database a connection's ``settings_dict`` names (for worker processes)."""
    return "postgres://{user}:{password}@{host}:{port}/{name}".format(
        user=settings["USER"] or "postgres",
        password=settings["PASSWORD"] or "",
        host=settings["HOST"] or "127.0.0.1",
        port=settings["PORT"] or 5432,
        name=settings["NAME"],
    )


@pytest.fixture
def start_worker(postgres_db, redis_broker, tmp_path):
    """``start(name, queue="generation", pool="prefork")`` starts a ``celery worker`` process (in
    its own process group) on the test database and Redis; all are killed at the end."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.generation.worker_settings",
        "DATABASE_URL": database_url(postgres_db),
        "CELERY_BROKER_URL": BROKER_URL,
        "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_S),
        "PREFHUB_VAR_DIR": str(tmp_path / "var"),
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
        # One torch thread: on a small, busy CI machine OpenMP threads spin against each other.
        "OMP_NUM_THREADS": "1",
    }
    workers: list[subprocess.Popen] = []

    def start(name: str, *, queue: str = "generation", pool: str = "prefork") -> subprocess.Popen:
        proc = _popen_logged(
            tmp_path / f"{name}.log",
            [
                _celery_bin(),
                "-A",
                "config",
                "worker",
                "-Q",
                queue,
                "-c",
                "1",
                "--pool",
                pool,
                "--loglevel",
                "INFO",
                "-n",
                f"{name}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            env,
        )
        workers.append(proc)
        return proc

    yield start
    for proc in workers:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    connection.close()


def _popen_logged(log_path: Path, argv: list[str], env: dict) -> subprocess.Popen:
    """Start ``argv`` from the repository root in its own process group, output into ``log_path``
    (kept as ``proc.log_path`` for :func:`_logs`)."""
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    proc.log_path = log_path  # type: ignore[attr-defined]
    return proc


def _logs(procs) -> str:
    return "\n".join(
        f"--- {p.log_path.name} ---\n{p.log_path.read_text(errors='replace')[-4000:]}" for p in procs
    )


def _wait(predicate, *, timeout: float, procs, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{_logs(procs)}")


def _wait_done(job_id: int, *, timeout: float, procs, what: str) -> GenerationJob:
    """Wait (as :func:`_wait`) for the job to leave QUEUED/RUNNING; it must have ended DONE."""
    job = _wait(_finished(job_id), timeout=timeout, procs=procs, what=what)
    assert job.state == JobState.DONE, _logs(procs)
    return job


def _job_state(job_id: int) -> GenerationJob:
    return GenerationJob.objects.get(pk=job_id)


def _finished(job_id: int):
    """A :func:`_wait` predicate: the job once it has left QUEUED/RUNNING, else False."""
    return lambda: (j := _job_state(job_id)).state not in (JobState.QUEUED, JobState.RUNNING) and j


def _assert_exactly_once(job: GenerationJob, *, prompts: int, k: int) -> None:
    cands = Candidate.objects.filter(generation_job=job)
    assert cands.count() == prompts * k
    dupes = cands.values("prompt_id", "endpoint_id", "sample_index").annotate(n=Count("id")).filter(n__gt=1)
    assert not dupes.exists()
    per_prompt = set(cands.values("prompt_id").annotate(n=Count("id")).values_list("n", flat=True))
    assert per_prompt == {k}


@pytest.fixture
def tiny_endpoint(tiny_model_path):
    return services.endpoint_create(
        name="tiny-worker", backend="transformers", model=tiny_model_path, config={"device": "cpu"}
    )


def test_worker_generates_candidates_and_tasks(
    research_project, tiny_endpoint, start_worker, publish_to_redis
):
    add_prompts(research_project, 5)
    Prompt.objects.create(
        project=research_project, external_id="long", messages=[{"role": "user", "content": "word " * 3000}]
    )
    worker = start_worker("gen-worker-1")
    job = services.job_create(
        project=research_project,
        endpoints=[tiny_endpoint],
        k=2,
        batch_size=2,
        sampling={"max_new_tokens": 8, "seed": 7},
        auto_release="all",
    )
    job = _wait_done(job.pk, timeout=240, procs=[worker], what="the job to finish")
    assert (job.done_units, job.failed_units, job.total_units) == (5, 1, 6)
    _assert_exactly_once(job, prompts=5, k=2)
    assert "context" in GenerationFailure.objects.get(job=job).message
    tasks = Task.objects.filter(generation_job=job)
    assert tasks.count() == 5  # one pair per prompt: its two samples
    assert all(t.slots.count() == 2 for t in tasks)
    c = Candidate.objects.filter(generation_job=job).first()
    assert c.model_version.startswith("sha256:") and c.sampling_params["max_new_tokens"] == 8
    assert set(GenerationBatch.objects.filter(job=job).values_list("state", flat=True)) == {"done"}


def test_killed_worker_batch_is_redelivered_and_written_once(
    research_project, tiny_endpoint, start_worker, publish_to_redis, redis_broker
):
    prompts, k = 10, 3
    add_prompts(research_project, prompts)
    first = start_worker("gen-worker-crash")
    job = services.job_create(
        project=research_project,
        endpoints=[tiny_endpoint],
        k=k,
        batch_size=1,
        sampling={"max_new_tokens": 32, "seed": 11},
        auto_release="all",
    )

    def mid_batch():
        j = _job_state(job.pk)
        started = GenerationBatch.objects.filter(job=job, state="pending", attempts__gte=1).first()
        return j.done_units >= 2 and j.state == JobState.RUNNING and started

    in_flight = _wait(
        mid_batch, timeout=240, procs=[first], what="the worker to be in the middle of a batch", interval=0.02
    )
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    killed_at = _job_state(job.pk)
    assert killed_at.state == JobState.RUNNING and killed_at.done_units < prompts
    in_flight.refresh_from_db()
    # Normally the kill lands inside that batch; if it committed in the few ms before, it is no
    # longer the witness of a redelivery (everything below still holds).
    interrupted = in_flight.state == "pending"
    # what the dead worker held is still in Redis: unacknowledged, or already restored to the queue
    assert redis_broker.hlen("unacked") + redis_broker.llen("generation") >= 1

    time.sleep(VISIBILITY_TIMEOUT_S + 1)  # past the visibility timeout: the message may be restored
    second = start_worker("gen-worker-rescue")
    job = _wait_done(job.pk, timeout=240, procs=[first, second], what="the second worker to finish the job")
    assert (job.done_units, job.failed_units) == (prompts, 0)
    _assert_exactly_once(job, prompts=prompts, k=k)
    in_flight.refresh_from_db()
    assert in_flight.state == "done"
    if interrupted:
        assert in_flight.attempts >= 2  # started by both workers, written once
    tasks = Task.objects.filter(generation_job=job)
    assert tasks.count() == prompts * 3  # C(3, 2) pairs per prompt, created once
    assert GenerationBatch.objects.filter(job=job).exclude(state="done").count() == 0


@pytest.fixture
def hour_visibility(monkeypatch):
    """Workers and this process's publisher with the production visibility timeout (requested
    before ``start_worker``, which reads it when it is set up)."""
    monkeypatch.setattr(f"{__name__}.VISIBILITY_TIMEOUT_S", 3600)


def test_killed_worker_batch_comes_back_through_the_sweep_not_the_visibility_timeout(
    hour_visibility, research_project, tiny_endpoint, start_worker, publish_to_redis, redis_broker, settings
):
    from config.celery import app

    assert app.conf.broker_transport_options["visibility_timeout"] == 3600  # patched before set-up
    settings.CELERY_BROKER_URL = BROKER_URL  # the sweep reads the test broker
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
