"""Celery tasks for training runs (queue "training": tasks named ``training.*`` route there).

``run_execute`` is acknowledged when it starts (``acks_late=False``): a run can last for days and
must never be redelivered by a broker's visibility timeout; the service claims the run with a
conditional update, so a duplicate delivery does nothing either way. The training itself runs in
a subprocess, so a crash or an out-of-memory kill fails the run, not the worker.
"""

from __future__ import annotations

from celery import shared_task

__all__ = ["run_execute"]


@shared_task(name="training.tasks.runs.run_execute", acks_late=False, ignore_result=True)
def run_execute(run_id: int) -> None:
    from training.services.runs import run_execute as execute

    execute(run_id=run_id)


@shared_task(name="training.runs_fail_stale", ignore_result=True)
def runs_fail_stale_task() -> int:
    """Periodic (Celery beat): fail runs whose worker stopped sending heartbeats."""
    from training.services.runs import runs_fail_stale

    return runs_fail_stale()
