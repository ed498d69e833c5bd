"""One lifecycle for background jobs: report snapshots, exports, generation jobs, training runs.

A job is created ``queued``, may go ``running``, and ends once in ``done``, ``failed`` or
``cancelled``. The models keep their own tables and stored values (no data migration):
``BackgroundJob`` (an abstract model whose one field is the ``error`` a failed job records) tells
the helpers how a model stores the lifecycle, namely which value means each state and which column
records the end (``UserJob`` adds who asked and when, ``WorkerJob`` the stored lifecycle state and
start of a job a worker runs), so that

* ``job_finish`` / ``job_fail`` end a job the same way everywhere, and once (one UPDATE of state,
  error text and end time that applies only while the job is active, mirrored on the instance), and
* ``job_status_payload`` gives the common part of every status JSON the pages poll and the API
  returns (``id``, ``state``, ``active``, ``finished``, ``error``, ``started_at``, ``finished_at``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import zlib
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, models, transaction
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from annotate.validation import storable_text
from core.models import Authored

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 5000


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATES = (JobState.QUEUED, JobState.RUNNING)
FINAL_STATES = (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class BackgroundJob(models.Model):
    """Mixin for a job's model: the error it failed with. Subclasses have a ``state`` column and
    override ``JOB_STATES`` (lifecycle state -> stored value) only where their stored values differ,
    and ``JOB_FINISHED_FIELD`` where the end time has another name."""

    JOB_STATES: ClassVar[Mapping[str, str]] = {}
    JOB_FINISHED_FIELD: ClassVar[str] = "finished_at"
    JOB_ERROR_CHARS: ClassVar[int] = MAX_ERROR_CHARS

    error = models.TextField(blank=True)

    class Meta:
        abstract = True

    @classmethod
    def stored_state(cls, state: str) -> str:
        return cls.JOB_STATES.get(state, state)

    @classmethod
    def lifecycle_state(cls, stored: str) -> str:
        """The lifecycle state of a stored value (the first one mapped onto it)."""
        for state, value in cls.JOB_STATES.items():
            if value == stored:
                return state
        return stored

    @property
    def job_active(self) -> bool:
        return self.lifecycle_state(self.state) in ACTIVE_STATES

    @property
    def job_finished(self) -> bool:
        return self.lifecycle_state(self.state) in FINAL_STATES


class UserJob(BackgroundJob, Authored):
    """A job somebody asked for (exports, generation jobs, training runs): who and when, when it
    ended. Newest first."""

    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]


class WorkerJob(UserJob):
    """A user job that a worker runs (generation jobs, training runs, judge jobs, re-routes): it stores the
    lifecycle states as they are and records when a worker started it. Its name is
    ``<JOB_NOUN> <id> (<state>)``."""

    JOB_NOUN: ClassVar[str] = "job"

    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.QUEUED)
    started_at = models.DateTimeField(null=True, blank=True)

    class Meta(UserJob.Meta):
        abstract = True

    def __str__(self) -> str:
        return f"{self.job_noun} {self.pk} ({self.state})"

    @property
    def job_noun(self) -> str:
        return self.JOB_NOUN


class Resumable(models.Model):
    """Mixin for a job (a ``BackgroundJob``) that one message runs and that resumes, or starts again,
    when that message is delivered again: judge jobs, re-routes, exports. ``RESUME_TASK`` names its
    Celery task. ``progress_at`` is its sign of life, stamped when a worker claims it and as it
    goes (each step it commits, or a ``Heartbeat``); ``RESUME_DUE_FIELD`` names a column holding
    when the job is next due when it waits on purpose (a judge job's extra pass). An active job
    with no sign of life for ``stalled_after()`` past both is ``stalled``: its worker died or was
    stopped. On the embedded broker its message went with the worker (and on Redis one can be lost
    in a broker restart, or wait for the visibility timeout): the beat sweep ``jobs_resume_stalled``
    sends it again."""

    RESUME_TASK: ClassVar[str] = ""
    RESUME_DUE_FIELD: ClassVar[str | None] = None

    progress_at = models.DateTimeField(
        null=True, blank=True, help_text="When its worker last reported progress (claimed it, or a step)."
    )

    class Meta:
        abstract = True

    @staticmethod
    def stalled_after() -> timedelta:
        return timedelta(seconds=settings.PREFHUB_JOB_STALLED_AFTER_S)

    @property
    def last_sign_of_life(self) -> datetime | None:
        due = getattr(self, self.RESUME_DUE_FIELD) if self.RESUME_DUE_FIELD else None
        times = [t for t in (self.progress_at or self.created_at, due) if t is not None]
        return max(times) if times else None

    @property
    def stalled(self) -> bool:
        last = self.last_sign_of_life
        return self.job_active and last is not None and timezone.now() - last > self.stalled_after()


class ResumableJob(Resumable, WorkerJob):
    """A resumable job a worker runs (judge jobs, re-routes)."""

    class Meta(WorkerJob.Meta):
        abstract = True


def jobs_resume_stalled(model: type[Resumable], *, limit: int = 1000) -> list[int]:
    """The beat sweep: send the message of every stalled job of ``model`` again whose message is
    gone (none in the outbox or the broker's queue: ``core.outbox.messages_waiting``), so that a job whose
    worker died or was stopped resumes on the next worker instead of showing "running" for ever.
    Safe when wrong: the job's runner claims it under ``run_alone`` and skips what it already
    committed. Nothing when the broker cannot be read. Returns the ids sent again."""
    from core.outbox import messages_waiting, outbox_enqueue

    waiting = messages_waiting(model.RESUME_TASK)
    if waiting is None:
        return []
    cutoff = timezone.now() - model.stalled_after()
    last = Coalesce("progress_at", "created_at")
    if model.RESUME_DUE_FIELD:
        last = Greatest(last, Coalesce(model.RESUME_DUE_FIELD, "created_at"))
    stalled = (
        model.objects.filter(state__in=[model.stored_state(s) for s in ACTIVE_STATES])
        .alias(last_sign_of_life=last)
        .filter(last_sign_of_life__lt=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    ids = [pk for pk in stalled if pk not in waiting]
    if ids:
        with transaction.atomic():
            for pk in ids:
                outbox_enqueue(model.RESUME_TASK, pk)
        log.warning("sent %d stalled %s(s) again: %s", len(ids), model._meta.verbose_name, ids[:20])
    return ids


def jobs_resume_all_stalled() -> int:
    """``jobs_resume_stalled`` for every resumable job model (the beat task); how many were sent."""
    from django.apps import apps

    resumable = [m for m in apps.get_models() if issubclass(m, Resumable)]
    return sum(len(jobs_resume_stalled(model)) for model in resumable)


class Heartbeat:
    """Stamps ``field`` on row ``pk`` of ``model`` on entry and then every ``every`` seconds from a
    thread while the block runs (no thread when ``every`` is falsy), so that a sweep can tell work a
    live worker is doing from work whose worker died: generation batches (``heartbeat_at``),
    exports (``progress_at``)."""

    def __init__(self, model: type[models.Model], pk: int, field: str, every: float | None) -> None:
        self.model, self.pk, self.field, self.every = model, pk, field, every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _beat(self) -> None:
        self.model.objects.filter(pk=self.pk).update(**{self.field: timezone.now()})

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.every):
                try:
                    self._beat()
                except Exception:  # a missed beat only makes the sweep more eager
                    log.warning("heartbeat of %s %s failed", self.model._meta.label, self.pk, exc_info=True)
        finally:
            connection.close()

    def __enter__(self) -> Heartbeat:
        self._beat()
        if self.every:
            name = f"{self.model._meta.model_name}-{self.pk}-heartbeat"
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


#: How a Celery task that runs a resumable job (judge jobs, re-routes) is delivered: acknowledged
#: once it has run, so a worker that dies mid-job leaves the message to be delivered again (the
#: job's runner resumes it, ``run_alone`` keeping a second delivery off a job being run), and
#: retried with backoff when the database connection drops. ``@shared_task(name=..., **JOB_TASK)``.
JOB_TASK: dict[str, Any] = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "max_retries": 3,
    "retry_backoff": 5,
}


def job_error_text(error: BaseException | str) -> str:
    """What a failed job records: an exception as ``Type: message``, a message as it is; made
    storable (a NUL or a lone surrogate, say from a model server's error text, becomes U+FFFD, so
    recording the failure cannot fail in turn and replace the reason with a database error)."""
    if isinstance(error, BaseException):
        return storable_text(f"{type(error).__name__}: {error}")
    return storable_text(str(error))


def job_finish(job: BackgroundJob, *, state: str = JobState.DONE, error: str = "", **fields: Any) -> bool:
    """End ``job`` in ``state`` (done, failed or cancelled) with ``error`` and any other columns,
    stamping the end time: one UPDATE by primary key that applies only while the job is still
    active, so a job ends once. Returns whether this call ended it. The instance mirrors the row
    either way: the values written, or (when something else ended the job first: a cancel, the
    stale-job sweep) the end that stands."""
    if state not in FINAL_STATES:
        raise ValueError(f"a job ends in one of {', '.join(FINAL_STATES)}, not {state!r}")
    values = {
        "state": job.stored_state(state),
        "error": error[: job.JOB_ERROR_CHARS],
        job.JOB_FINISHED_FIELD: timezone.now(),
        **fields,
    }
    return _move(job, ACTIVE_STATES, values)


def job_reopen(job: BackgroundJob, **fields: Any) -> bool:
    """Queue an ended job (done or failed) again, for work it left undone (a retry): back to
    ``queued`` with no error and no end time (and any other columns), by one UPDATE that applies
    only while the job is still done or failed. Returns whether it did; the instance mirrors the
    row either way."""
    values = {"state": job.stored_state(JobState.QUEUED), "error": "", job.JOB_FINISHED_FIELD: None, **fields}
    return _move(job, (JobState.DONE, JobState.FAILED), values)


def job_claim(model: type[WorkerJob], pk: int, **fields: Any) -> bool:
    """A worker takes job ``pk`` of ``model``: queued -> running, or a running job delivered again
    (a redelivery after a worker died, a waiting job's message back), keeping the first start time,
    with any other columns; by one UPDATE that applies only while the job is active. Whether it
    is (False: it has ended, and the delivery has nothing to do)."""
    values = {
        "state": JobState.RUNNING,
        "started_at": Coalesce(models.F("started_at"), timezone.now()),
        **fields,
    }
    return bool(model.objects.filter(pk=pk, state__in=ACTIVE_STATES).update(**values))


def _move(job: BackgroundJob, from_states: tuple[str, ...], values: dict[str, Any]) -> bool:
    """Write ``values`` to the job's row by one UPDATE that applies only while its lifecycle state is
    one of ``from_states``; whether it did. The instance mirrors the row either way."""
    allowed = {job.stored_state(s) for s in from_states}
    moved = bool(type(job).objects.filter(pk=job.pk, state__in=allowed).update(**values))
    if moved:
        for name, value in values.items():
            setattr(job, name, value)
    else:
        job.refresh_from_db(fields=["state", "error", job.JOB_FINISHED_FIELD])
    return moved


def job_fail(job: BackgroundJob, error: BaseException | str, **fields: Any) -> bool:
    """End ``job`` as failed, recording ``error`` (an exception or a message); whether this call
    ended it (see ``job_finish``)."""
    return job_finish(job, state=JobState.FAILED, error=job_error_text(error), **fields)


def job_status_payload(job: BackgroundJob) -> dict[str, Any]:
    """The part of a job's status JSON that every kind of job shares."""
    started = getattr(job, "started_at", None)
    finished = getattr(job, job.JOB_FINISHED_FIELD, None)
    return {
        "id": job.pk,
        "state": job.state,
        "active": job.job_active,
        "finished": job.job_finished,
        "error": job.error,
        "started_at": started.isoformat() if started else None,
        "finished_at": finished.isoformat() if finished else None,
    }


#: Row ids below this get a lock key of their own (``_advisory_key``): 2**47, 140 trillion.
ADVISORY_ID_LIMIT = 2**47


def _advisory_key(model: type[models.Model], pk: int) -> tuple[int]:
    """The key for ``pg_try_advisory_lock(bigint)``: 16 bits of the model's name above the row id's
    47 (non-negative, so it fits a signed bigint). Two jobs share a key only past ``ADVISORY_ID_LIMIT``
    ids (two 32-bit keys, as before, gave job 2**32 + 1 the key of job 1)."""
    if not 0 <= pk < ADVISORY_ID_LIMIT:
        raise ValueError(f"job id {pk} is beyond the advisory lock's range")
    return ((zlib.crc32(model._meta.label_lower.encode()) & 0xFFFF) << 47 | pk,)


@contextlib.contextmanager
def run_alone(model: type[models.Model], pk: int) -> Iterator[bool]:
    """Whether this worker is the only one running job ``pk`` of ``model`` for the block.

    A message can reach two workers at once (the broker redelivers a long task whose
    acknowledgement is late, the sweep re-sends a batch whose worker is slow): both would call the
    model, and a priced judge or endpoint would be paid twice. On PostgreSQL a session-level advisory
    lock on the job is taken for the block; a second worker finds it taken and should leave the job
    to the first. The database drops the lock when the holder's connection ends, so the message
    redelivered after a worker died still resumes the job. Elsewhere (SQLite: the one embedded
    worker) it is always True."""
    if connection.vendor != "postgresql":
        yield True
        return
    key = _advisory_key(model, pk)
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s)", key)
        alone = bool(cur.fetchone()[0])
    try:
        yield alone
    finally:
        if alone:
            try:
                with connection.cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(%s)", key)
            except (OperationalError, InterfaceError):  # the connection is gone, and its lock with it
                pass
