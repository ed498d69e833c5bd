"""When the worker's watch over a run breaks (the database drops the connection while metrics are
written, say), the run does not stay "running" with its trainer training on unwatched in its own
process group until the stale sweep calls it failed 5 minutes later (the trainer still training):
the executor stops the trainer's process group and records the run failed, saying why."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from django.db import OperationalError

from tests.training.conftest import launch_fake_runner
from training.models import RunState
from training.services import runs as run_services
from training.services.runs import run_create, run_execute

pytestmark = pytest.mark.django_db(transaction=True)  # the worker runs outside a transaction


def test_a_broken_watch_stops_the_trainer_and_fails_the_run(make_project, dataset, tmp_path, monkeypatch):
    launch_fake_runner(monkeypatch, tmp_path, "hang")
    started: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    def popen(*args, **kwargs):
        proc = real_popen(*args, **kwargs)
        started.append(proc)
        return proc

    monkeypatch.setattr(run_services.subprocess, "Popen", popen)
    real_flush = run_services._MetricsWriter.flush

    def flush(self, *, force=False):
        if self.pending:
            raise OperationalError("server closed the connection unexpectedly")
        return real_flush(self, force=force)

    monkeypatch.setattr(run_services._MetricsWriter, "flush", flush)
    run = run_create(project=make_project(), kind="reward", base_model="tiny", dataset_path=dataset)
    try:
        with contextlib.suppress(OperationalError):
            run_execute(run_id=run.pk, poll_seconds=0.05)
        (proc,) = started
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is not None, "the trainer trains on, unwatched"
        run.refresh_from_db()
        assert run.state == RunState.FAILED, run.state
        assert "server closed the connection" in run.error
        assert not list(Path(run.output_path).parent.glob(f"run-{run.pk}.tmp-*"))
    finally:
        for proc in started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
