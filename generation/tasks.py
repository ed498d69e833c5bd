"""Celery tasks of the generation app (queue "generation", routed by the "generation." prefix).

Thin: each takes a batch id and calls one service. ``acks_late`` + ``reject_on_worker_lost``
(and prefetch 1, from settings) mean a batch whose worker dies is delivered again, to another
worker once the broker's visibility timeout has passed; ``services.batch_run`` writes a batch
exactly once, so the second delivery completes it or finds it done. With the embedded
(filesystem) broker a message is gone once received (and on Redis one can be lost in a broker
restart), so the beat sweep ``batches_requeue_orphaned`` sends again the pending batches with no
queued message that no worker is heartbeating.

Pool: the generation queue's worker must run ``--pool solo`` (or threads): vLLM's engine starts
child processes, which prefork's daemonic children may not (``run_platform.GENERATION_WORKER``).
"""

from __future__ import annotations

import logging

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError

from core.jobs import JOB_TASK
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


#: Seconds between a generating batch's heartbeats (the orphan sweep waits many times longer).
HEARTBEAT_S = 10.0


@shared_task(bind=True, base=BatchTask, name="generation.run_batch")
def run_batch(self, batch_id: int) -> dict:
    outcome = services.batch_run(
        batch_id=batch_id, retry_transient=self.request.retries < self.max_retries, heartbeat_s=HEARTBEAT_S
    )
    return {
        "batch": outcome.batch_id,
        "status": outcome.status,
        "written": outcome.written,
        "failed": outcome.failed,
    }


@shared_task(name="generation.batches_requeue_orphaned", ignore_result=True)
def batches_requeue_orphaned() -> int:
    """Beat sweep: pending batches whose message died with a worker are sent again."""
    return services.batches_requeue_orphaned()


@shared_task(name="generation.judge_job_run", **JOB_TASK)
def judge_job_run(job_id: int) -> dict:
    """Run an AI judge job (``annotate.judges.services``): judged on the generation queue, where
    the endpoints' models live. Idempotent: a redelivered job skips the tasks it already judged. A
    job whose tasks failed transiently returns while it waits (running) and is sent here again,
    with a countdown, for its extra pass; the worker is free meanwhile."""
    from annotate.judges.services import judge_job_run as run

    job = run(job_id=job_id)
    return {"job": job_id, "state": job.state if job else None}
