"""The generation worker as documented (``run_platform.GENERATION_WORKER``: ``--pool solo``) on the
default ``make run`` set-up (the embedded filesystem broker), with a backend that starts a child
process the way vLLM's engine does.

* The job completes (under the prefork pool the backend cannot load: its daemonic children may not
  have children).
* The worker is SIGKILLed mid-job: the filesystem transport had already dropped the batch's message,
  so only the beat sweep brings it back; after a restart the job finishes, every candidate once.
* A model switch closes the loaded backend (its engine child ends) before the next one loads.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from django.db import connection

from annotate.management.commands.run_platform import GENERATION_WORKER, beat, stop_groups
from generation import backends, services
from generation.models import GenerationBatch, JobState
from tests.generation.conftest import add_prompts
from tests.generation.test_worker import (
    REPO,
    _assert_exactly_once,
    _job_state,
    _popen_logged,
    _wait,
    _wait_done,
    database_url,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def filesystem_broker(tmp_path):
    """This process publishes to a private filesystem broker folder, as ``make run`` does."""
    from kombu import pools

    from config.celery import app

    folder = tmp_path / "broker"
    options = {}
    for sub, keys in (("queue", ("data_folder_in", "data_folder_out")), ("processed", ("processed_folder",))):
        (folder / sub).mkdir(parents=True)
        options.update(dict.fromkeys(keys, str(folder / sub)))
    (folder / "control").mkdir()
    options.update(control_folder=str(folder / "control"), store_processed=False)

    def reset():
        pools.reset()
        app._pool = None
        app.amqp._producer_pool = None

    from core.broker import TRANSPORT

    old = (app.conf.broker_url, app.conf.broker_transport, app.conf.broker_transport_options)
    reset()
    app.conf.broker_url, app.conf.broker_transport, app.conf.broker_transport_options = (
        "filesystem://",
        TRANSPORT,
        options,
    )
    yield folder
    reset()
    app.conf.broker_url, app.conf.broker_transport, app.conf.broker_transport_options = old


@pytest.fixture
def platform(transactional_db, filesystem_broker, tmp_path):
    """start(argv) runs ``python <argv>`` like run_platform does; every group is killed at the end."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL): worker processes share the test database")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.generation.pool_worker_settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "CELERY_BROKER_URL": "filesystem://",
        "CELERY_BROKER_FOLDER": str(filesystem_broker),
        "PREFHUB_VAR_DIR": str(tmp_path / "var"),
        "PREFHUB_GENERATION_SWEEP_S": "1",
        "PREFHUB_GENERATION_ORPHAN_AFTER_S": "4",
        "PREFHUB_FAKE_DELAY_S": "0.7",
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
    }
    procs: list[subprocess.Popen] = []

    def start(name: str, argv: list[str]) -> subprocess.Popen:
        proc = _popen_logged(tmp_path / f"{name}.log", [sys.executable, *argv], env)
        procs.append(proc)
        return proc

    (tmp_path / "var").mkdir()
    start.var = tmp_path / "var"  # type: ignore[attr-defined]
    yield start
    stop_groups(procs, grace=5)
    connection.close()


@pytest.fixture
def fake_endpoint():
    return services.endpoint_create(name="fake-engine", backend="transformers", model="fake/model")


def test_documented_worker_runs_a_backend_that_starts_child_processes(
    research_project, fake_endpoint, platform
):
    assert (
        "--pool" in GENERATION_WORKER and GENERATION_WORKER[GENERATION_WORKER.index("--pool") + 1] == "solo"
    )
    add_prompts(research_project, 4)
    worker = platform("generation-worker", GENERATION_WORKER)
    job = services.job_create(
        project=research_project, endpoints=[fake_endpoint], k=2, batch_size=2, sampling={"seed": 3}
    )
    job = _wait_done(job.pk, timeout=120, procs=[worker], what="the job to finish")
    _assert_exactly_once(job, prompts=4, k=2)


def test_sigkilled_worker_job_finishes_after_restart_every_candidate_once(
    research_project, fake_endpoint, platform
):
    prompts, k = 8, 2
    add_prompts(research_project, prompts)
    sweeper = platform("beat", beat(str(platform.var / "celerybeat-schedule")))
    first = platform("generation-worker-1", GENERATION_WORKER)
    job = services.job_create(
        project=research_project, endpoints=[fake_endpoint], k=k, batch_size=1, sampling={"seed": 5}
    )

    def mid_batch():
        j = _job_state(job.pk)
        return (
            j.done_units >= 1
            and GenerationBatch.objects.filter(job=job, state="pending", attempts__gte=1).first()
        )

    in_flight = _wait(mid_batch, timeout=120, procs=[first, sweeper], what="a batch in flight", interval=0.02)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert _job_state(job.pk).state == JobState.RUNNING
    time.sleep(2)
    second = platform("generation-worker-2", GENERATION_WORKER)
    job = _wait_done(job.pk, timeout=180, procs=[first, second, sweeper], what="the job to finish")
    assert (job.done_units, job.failed_units) == (prompts, 0)
    _assert_exactly_once(job, prompts=prompts, k=k)
    in_flight.refresh_from_db()
    assert in_flight.state == "done"
    assert GenerationBatch.objects.filter(job=job).exclude(state="done").count() == 0


@pytest.mark.django_db
def test_model_switch_closes_the_loaded_backend_before_the_next_loads(monkeypatch, settings):
    monkeypatch.setitem(backends.MODULES, "transformers", "tests.generation.spawning_backend")
    settings.PREFHUB_BACKEND_CACHE_SIZE = 1
    first_ep = services.endpoint_create(name="m1", backend="transformers", model="fake/one")
    second_ep = services.endpoint_create(name="m2", backend="transformers", model="fake/two")
    first = backends.get_backend(first_ep)
    assert first.engine.is_alive()
    from tests.generation import spawning_backend

    alive_at_load = []
    original = spawning_backend.SpawningBackend.__init__

    def init(self, model):
        alive_at_load.append(first.engine.is_alive())
        original(self, model)

    monkeypatch.setattr(spawning_backend.SpawningBackend, "__init__", init)
    second = backends.get_backend(second_ep)
    assert alive_at_load == [False]  # the first model's engine was gone before the second loaded
    assert second.engine.is_alive() and not first.engine.is_alive()
    backends.clear_cache()
    assert not second.engine.is_alive()
