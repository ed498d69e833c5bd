"""Celery tasks of the generation app (queue "generation", routed by the "generation." prefix).

Thin: each takes a batch id and calls one service. ``acks_late`` + ``reject_on_worker_lost``
(and prefetch 1, from settings) mean a batch whose worker dies is delivered again, to another
worker once the broker's visibility timeout has passed; ``services.batch_run`` writes a batch
exactly once, so the second delivery completes it or finds it done.
"""

from __future__ import annotations

import logging

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError

from generation import services
from generation.backends.base import TransientBackendError

log = logging.getLogger(__name__)


class BatchTask(Task):
    acks_late = True
    reject_on_worker_lost = True
    autoretry_for = (TransientBackendError, OperationalError, InterfaceError)
    max_retries = 4
    retry_backoff = 5
    retry_backoff_max = 120
    retry_jitter = True

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        """Retries exhausted or an unexpected error: the batch's prompts fail with the message,
        so the job still settles and the page says why."""
        batch_id = kwargs.get("batch_id", args[0] if args else None)
        if batch_id is None:
            return
        try:
            services.batch_mark_failed(batch_id=batch_id, message=f"{type(exc).__name__}: {exc}"[:2000])
        except Exception:
            log.exception("could not record the failure of generation batch %s", batch_id)


@shared_task(bind=True, base=BatchTask, name="generation.run_batch")
def run_batch(self, batch_id: int) -> dict:
    outcome = services.batch_run(batch_id=batch_id, retry_transient=self.request.retries < self.max_retries)
    return {
        "batch": outcome.batch_id,
        "status": outcome.status,
        "written": outcome.written,
        "failed": outcome.failed,
    }
