"""Celery tasks of the annotate app. Thin: they take ids and call one service."""

from __future__ import annotations

from celery import shared_task

from annotate.services.reports import report_snapshot_compute
from core.jobs import JOB_TASK


@shared_task(name="annotate.report_compute", acks_late=True, max_retries=0)
def report_compute(snapshot_id: int) -> None:
    """Compute a pending ReportSnapshot (enqueued by ``report_request`` on commit). A failure is
    recorded on the snapshot (state failed, with the error) and not retried: the manager can
    press Recompute again."""
    report_snapshot_compute(snapshot_id=snapshot_id)


@shared_task(name="annotate.outbox_flush", ignore_result=True)
def outbox_flush_task() -> int:
    """Periodic (Celery beat): re-send enqueues that did not reach the broker."""
    from core.outbox import outbox_flush

    return outbox_flush()


@shared_task(name="annotate.leases_expire", ignore_result=True)
def leases_expire_task() -> int:
    """Periodic (Celery beat): give expired leases' slots back even when nobody is claiming."""
    from annotate.services.leasing import leases_expire

    return leases_expire()


@shared_task(name="annotate.task_agreement_check", acks_late=True, ignore_result=True)
def task_agreement_check_task(task_id: int) -> bool:
    """After a submit (outbox): one more label for the task when its humans disagree (idempotent)."""
    from annotate.services.extra_labels import task_agreement_check

    return task_agreement_check(task_id=task_id)


@shared_task(name="annotate.task_priorities_refresh", acks_late=True, ignore_result=True)
def task_priorities_refresh_task(project_id: int) -> int:
    """After submits (outbox, debounced): recompute a task_order=active project's priorities."""
    from annotate.services.task_order import task_priorities_refresh

    return task_priorities_refresh(project_id=project_id)


@shared_task(name="annotate.task_priorities_sweep", ignore_result=True)
def task_priorities_sweep_task() -> int:
    """Periodic (Celery beat): refresh the priorities of every task_order=active project."""
    from annotate.services.task_order import task_priorities_sweep

    return task_priorities_sweep()


@shared_task(name="annotate.judge_reroute", **JOB_TASK)
def judge_reroute_task(job_id: int) -> dict:
    """Run a manager's re-route of judged tasks (``annotate.judges.services.reroute_job_run``)."""
    from annotate.judges.services import reroute_job_run

    job = reroute_job_run(job_id=job_id)
    return {"job": job_id, "state": job.state if job else None}


@shared_task(name="annotate.jobs_resume_stalled", ignore_result=True)
def jobs_resume_stalled_task() -> int:
    """Periodic (Celery beat): judge jobs, re-routes and exports whose worker died or was stopped
    are sent again (embedded broker; ``core.jobs.jobs_resume_all_stalled``)."""
    from core.jobs import jobs_resume_all_stalled

    return jobs_resume_all_stalled()
