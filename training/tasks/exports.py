"""Celery tasks for exports (queue "training"). Thin: the service does the work and records failure."""

from __future__ import annotations

import contextlib

from celery import shared_task

#: Seconds between a running export's heartbeats (the stalled-jobs sweep waits many times longer).
HEARTBEAT_S = 10.0


@shared_task(name="training.export_run", acks_late=True, ignore_result=True)
def export_run_task(export_id: int) -> None:
    """Compile one queued export. A failure is recorded on the export (state ``failed``, error) by
    the service; it is not retried, since the same data and options would fail the same way."""
    from annotate.errors import ServiceError
    from training.services.exports import export_run

    with contextlib.suppress(ServiceError):  # already recorded on the export
        export_run(export_id=export_id, heartbeat_s=HEARTBEAT_S)


__all__ = ["export_run_task"]
