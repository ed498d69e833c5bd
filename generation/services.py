"""Generation writes: endpoints, jobs, the batch worker function, progress and completion.

How a job runs
--------------
``job_create`` resolves the prompts, splits (prompts x endpoints) into ``GenerationBatch`` rows
of ``batch_size`` prompts for one endpoint and, on commit, enqueues one Celery task per batch.
A worker runs ``batch_run``: it generates outside any transaction, then ``_batch_commit`` writes
the batch's candidates and failures, marks the batch done and bumps the job's counters with F()
expressions, all in one transaction under the job's and the batch's row locks. The batch leaves
``pending`` only there, so a retried or redelivered batch (a worker killed mid-batch, a broker
that delivers twice) finds it finished and writes nothing; the candidates' unique key
(job, prompt, endpoint, sample_index) with ``ignore_conflicts`` is the second line of defence.

The transaction that settles the last unit moves the job to ``done`` (or ``failed`` when every
unit failed): the state change happens under the job's row lock and only from ``running``.

Staged candidates
-----------------
A job's candidates land *staged*: the batch commit also writes each one's ``CandidateCheck``
(empty, duplicate, identical pair, control or replacement characters, over length, stop reason),
and no task exists until ``job_release`` lets all of them, only the passing ones, or none into the
labeling queue. A release happens once per job (under the job's row lock; a second one is a
``Conflict``), is audited and recorded on the job. A job created with ``auto_release`` releases
itself in the transaction that finishes it (today's behaviour: ``"all"``; or ``"passing"``).

Lock order everywhere: the job row, then batch rows. On SQLite (no SELECT ... FOR UPDATE) the
settings' IMMEDIATE transactions serialise writers instead.

Failures
--------
* A prompt the backend cannot generate (too long, refused by the server, server down after the
  backend's retries) becomes a ``GenerationFailure`` with the backend's message; the others go on.
* An endpoint that cannot work at all (model path unknown, tokenizer without a chat template, key
  refused) fails the job at once with the message in ``job.error``.
* When every prompt of a batch failed transiently, the Celery task retries the batch later
  (``retry_transient``); the last attempt records the failures instead.
"""

from __future__ import annotations

import logging
import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.text import slugify

from annotate.errors import Conflict, InvalidInput
from annotate.models import Candidate, CandidateSource, Project, Prompt
from annotate.services.imports import MAX_TEXT_CHARS
from annotate.services.tasks import (
    PairMode,
    TaskSpec,
    candidate_groups,
    check_mode,
    default_mode_for,
    tasks_bulk_create,
)
from annotate.validation import MAX_ID, id_from_text, is_blank, storable_text
from core import jobs
from core.audit import audit_actor, audit_create, audit_record
from core.db import unique_or_conflict
from core.jobs import job_finish
from core.outbox import messages_waiting, outbox_enqueue
from core.paths import user_model
from generation import backends, selectors
from generation.backends.base import (
    FINISH_STOP,
    NATIVE_NORMAL_STOPS,
    BackendConfigError,
    Generation,
    InvalidSamplingParams,
    PromptError,
    SamplingParams,
    TransientBackendError,
)
from generation.models import (
    CHECK_FIELDS,
    RELEASABLE_STATES,
    AutoRelease,
    Backend,
    BatchState,
    CandidateCheck,
    GenerationBatch,
    GenerationFailure,
    GenerationJob,
    JobState,
    ModelEndpoint,
    ReleaseWhich,
)

log = logging.getLogger(__name__)

MAX_ENDPOINTS_PER_JOB = 16
MAX_UNITS_PER_JOB = 500_000
MAX_BATCH_SIZE = 256
#: A batch whose worker died this many times (killed for memory, say) fails instead of coming back.
MAX_BATCH_ATTEMPTS = 8
#: Without a batch size, a job takes ``DEFAULT_BATCH_SIZE`` prompts per batch, fewer when that
#: would make fewer than ``MIN_BATCHES_PER_ENDPOINT`` batches per endpoint: a small job (10
#: prompts) used to be one batch, and its progress jumped from 0 to 100 % in one commit.
DEFAULT_BATCH_SIZE = 16
MIN_BATCHES_PER_ENDPOINT = 4
FILTER_MODES = ("all", "untagged", "tag", "ids")
ACTIVE_STATES = jobs.ACTIVE_STATES
ENDPOINT_FIELDS = ("name", "backend", "model", "config", "default_sampling", "is_active")
LOCAL_MODEL_BACKENDS = (Backend.TRANSFORMERS, Backend.VLLM)  # their model may be a local folder


# --- endpoints -----------------------------------------------------------------------------------


def endpoint_values_clean(
    *, backend: str, model: str, config: dict | None, default_sampling: dict | None
) -> dict:
    """An endpoint's backend, model, config and sampling defaults, checked (InvalidInput naming the
    field) and returned as stored: the one rule for creating, changing and restoring an endpoint."""
    if backend not in Backend.values:
        raise InvalidInput(f"backend must be one of {', '.join(Backend.values)}.", field="backend")
    model = (model or "").strip() if isinstance(model, str | None) else ""
    if not model or len(model) > 500:
        raise InvalidInput(
            "Give the model: a Hugging Face name, a local path or the served model name.", field="model"
        )
    for name, value in (("config", config), ("default_sampling", default_sampling)):
        if not isinstance(value, dict | None):  # a restored dump's (the API's serializer checks)
            raise InvalidInput(f"{name} must be a JSON object.", field=name)
    try:
        config = backends.validate_config(backend, dict(config or {}))
    except (ValueError, BackendConfigError) as exc:
        raise InvalidInput(str(exc), field="config") from exc
    default_sampling = dict(default_sampling or {})
    if "n" in default_sampling:
        raise InvalidInput(
            "The number of samples is set per job (k), not per endpoint.", field="default_sampling"
        )
    try:
        default_sampling = {
            k: v
            for k, v in SamplingParams.from_dict(default_sampling).to_dict().items()
            if k in default_sampling
        }
    except InvalidSamplingParams as exc:
        raise InvalidInput(str(exc), field="default_sampling") from exc
    return {"backend": backend, "model": model, "config": config, "default_sampling": default_sampling}


@transaction.atomic
def endpoint_create(
    *,
    name: str,
    backend: str,
    model: str,
    config: dict | None = None,
    default_sampling: dict | None = None,
    project: Project | None = None,
    actor: AbstractBaseUser | None = None,
    is_active: bool = True,
    restrict_paths: bool = False,
) -> ModelEndpoint:
    """Register a model endpoint (``project`` None: shared by every project). The backend's
    settings are validated here (an OpenAI base URL must not point at internal addresses). With
    ``restrict_paths`` (pages and API), a local model folder of a project endpoint must be one a
    user of the project may name (``core.paths``: its own runs, or an allowed folder)."""
    slug = slugify(name or "")[:100]
    if not slug:
        raise InvalidInput("An endpoint needs a name (letters, digits, dashes).", field="name")
    values = endpoint_values_clean(
        backend=backend, model=model, config=config, default_sampling=default_sampling
    )
    if restrict_paths and project is not None and backend in LOCAL_MODEL_BACKENDS:
        values["model"] = user_model(values["model"], project=project, field="model")
    taken = Conflict(f"An endpoint named {slug!r} already exists.", field="name")
    with unique_or_conflict((ModelEndpoint.objects.filter(name=slug), taken)):
        return audit_create(
            ModelEndpoint,
            actor=actor,
            action="endpoint.create",
            details={"name": slug, "backend": backend, "model": values["model"]},
            name=slug,
            project=project,
            is_active=is_active,
            **values,
        )


@transaction.atomic
def endpoint_update(
    *, endpoint: ModelEndpoint, actor: AbstractBaseUser | None = None, **changes
) -> ModelEndpoint:
    """Change an endpoint's settings. Running jobs keep what their workers loaded; the next batch
    to load this endpoint sees the new settings (the per-process cache keys on them). Switched off,
    it takes no more work: a batch that reaches a worker afterwards fails (``_batch_run``)."""
    unknown = sorted(set(changes) - set(ENDPOINT_FIELDS))
    if unknown:
        raise InvalidInput(f"Unknown endpoint field(s): {', '.join(unknown)}.", field=unknown[0])
    endpoint = ModelEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    if "name" in changes:
        slug = slugify(changes["name"] or "")[:100]
        if not slug:
            raise InvalidInput("An endpoint needs a name.", field="name")
        if ModelEndpoint.objects.filter(name=slug).exclude(pk=endpoint.pk).exists():
            raise Conflict(f"An endpoint named {slug!r} already exists.", field="name")
        endpoint.name = slug
    values = endpoint_values_clean(
        backend=changes.get("backend", endpoint.backend),
        model=changes.get("model", endpoint.model),
        config=changes.get("config", endpoint.config),
        default_sampling=changes.get("default_sampling", endpoint.default_sampling),
    )
    for key, value in values.items():
        setattr(endpoint, key, value)
    if "is_active" in changes:
        endpoint.is_active = bool(changes["is_active"])
    others = ModelEndpoint.objects.filter(name=endpoint.name).exclude(pk=endpoint.pk)
    with unique_or_conflict(
        (others, Conflict(f"An endpoint named {endpoint.name!r} already exists.", field="name"))
    ):
        endpoint.save()
    audit_record(
        actor=actor,
        project=endpoint.project,
        action="endpoint.update",
        target=endpoint,
        details={"fields": sorted(changes)},
    )
    return endpoint


# --- jobs ----------------------------------------------------------------------------------------


def _clean_prompt_filter(prompt_filter: dict | str | None) -> dict:
    if prompt_filter is None or prompt_filter == "":
        return {"mode": "all"}
    if isinstance(prompt_filter, str):
        prompt_filter = {"mode": prompt_filter}
    if not isinstance(prompt_filter, dict):
        raise InvalidInput(
            'prompt_filter must be {"mode": "all"|"untagged"|"tag"|"ids", ...}.', field="prompt_filter"
        )
    mode = prompt_filter.get("mode") or ("ids" if prompt_filter.get("ids") else "all")
    if mode not in FILTER_MODES:
        raise InvalidInput(
            f"The prompt filter mode must be one of {', '.join(FILTER_MODES)}.", field="prompt_filter"
        )
    if mode == "tag":
        tag = prompt_filter.get("tag")
        if not isinstance(tag, str) or not tag.strip():
            raise InvalidInput("Filtering by tag needs a tag.", field="prompt_filter")
        return {"mode": "tag", "tag": tag.strip()}
    if mode == "ids":
        ids = prompt_filter.get("ids")
        if not isinstance(ids, list) or not ids:
            raise InvalidInput(
                "Filtering by ids needs a non-empty list of prompt ids.", field="prompt_filter"
            )
        if len(ids) > MAX_UNITS_PER_JOB:
            raise InvalidInput(f"Choose at most {MAX_UNITS_PER_JOB} prompts by id.", field="prompt_filter")
        if not all(_prompt_ref(i) for i in ids):
            raise InvalidInput(
                'Prompt ids are the ids of the imported lines (strings such as "q1") or prompt numbers '
                "(whole numbers).",
                field="prompt_filter",
            )
        return {"mode": "ids", "ids": ids}
    return {"mode": mode}


def _prompt_ref(value: object) -> bool:
    """A prompt's imported id (a string) or its database id (a whole number)."""
    if isinstance(value, str):
        return 0 < len(value.strip()) <= 200 and "\x00" not in value
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID


def _resolve_prompt_refs(*, project: Project, refs: list) -> list[int]:
    """Database ids of the prompts ``refs`` names: a string is an imported id (or, when no prompt was
    imported with it and it is a number, a database id); a number is a database id. Every ref must
    be one of the project's prompts."""
    texts = sorted({r.strip() for r in refs if isinstance(r, str)})
    by_external = selectors.prompt_ids_by_external_id(project=project, external_ids=texts)
    numbers = {r for r in refs if isinstance(r, int)}
    for text in texts:
        if text in by_external:
            continue
        number = id_from_text(text)
        if number is None:
            raise InvalidInput(f"No prompt with the id {text!r} in this project.", field="prompt_filter")
        numbers.add(number)
    found = set(selectors.prompt_ids_for_filter(project=project, mode="ids", ids=sorted(numbers)))
    missing = sorted(numbers - found)
    if missing:
        shown = ", ".join(map(str, missing[:10]))
        raise InvalidInput(f"No prompt {shown} in this project.", field="prompt_filter")
    return sorted(found | set(by_external.values()))


def _clean_job_sampling(sampling: dict | None, k: int) -> dict:
    sampling = dict(sampling or {})
    if "n" in sampling:
        raise InvalidInput("Give the number of samples as k, not n.", field="sampling")
    try:
        params = SamplingParams.from_dict(sampling, n=k)
    except InvalidSamplingParams as exc:
        raise InvalidInput(str(exc), field=exc.field or "sampling") from exc
    cleaned = {key: value for key, value in params.to_dict().items() if key in sampling}
    # Every job has a seed, drawn here when not given, so each batch is reproducible.
    cleaned["seed"] = params.seed if params.seed is not None else random.SystemRandom().randrange(2**31)
    return cleaned


def batch_seed(job: GenerationJob, index: int) -> int:
    """The sampling seed of batch ``index``: the job's seed, offset so batches differ (a backend
    may add up to 1023 to it for its own micro-batches)."""
    return (int(job.sampling.get("seed", 0)) + 1024 * index) % 2**62


def sampling_for(*, job: GenerationJob, endpoint: ModelEndpoint, index: int = 0) -> SamplingParams:
    """What a batch samples with: the endpoint's defaults, overridden by the job, ``n = k``."""
    values = {**(endpoint.default_sampling or {}), **(job.sampling or {})}
    values.pop("n", None)
    return SamplingParams.from_dict(values, n=job.k, seed=batch_seed(job, index))


def job_sampling_by_endpoint(*, job: GenerationJob) -> list[tuple[str, dict | str]]:
    """What each of the job's models samples with (``sampling_for`` of its first batch, without
    ``n``: the job's k), by endpoint name; the reason in place of settings that no longer combine."""
    rows: list[tuple[str, dict | str]] = []
    for endpoint in job.endpoints.all().order_by("name"):
        try:
            values = sampling_for(job=job, endpoint=endpoint).to_dict()
        except InvalidSamplingParams as exc:
            rows.append((endpoint.name, str(exc)))
            continue
        values.pop("n", None)
        rows.append((endpoint.name, values))
    return rows


def _chunks(items: Sequence[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


@transaction.atomic
def job_create(
    *,
    project: Project,
    endpoints: Sequence[ModelEndpoint],
    prompt_filter: dict | str | None = None,
    k: int = 2,
    sampling: dict | None = None,
    task_mode: str | None = None,
    pairs_per_prompt: int | None = None,
    batch_size: int | None = None,
    actor: AbstractBaseUser | None = None,
    enqueue: bool = True,
    auto_release: str = AutoRelease.STAGED,
) -> GenerationJob:
    """Create a job and its batches; on commit, enqueue one Celery task per batch.

    ``prompt_filter``: ``{"mode": "all"}``, ``{"mode": "untagged"}``, ``{"mode": "tag", "tag": t}``
    or ``{"mode": "ids", "ids": [...]}``. ``k`` samples per prompt per endpoint. ``task_mode``
    (default: the project's kind) says how a release turns candidates into pairwise or ranking
    tasks. ``auto_release`` ("" staged, "passing" or "all") releases the job when it finishes.
    ``batch_size`` None: at most ``DEFAULT_BATCH_SIZE`` prompts, and at least
    ``MIN_BATCHES_PER_ENDPOINT`` batches per endpoint when there are enough prompts. ``enqueue=False`` leaves the batches for
    ``job_run_inline`` (the CLI's --inline).
    """
    auto_release = auto_release or AutoRelease.STAGED
    if auto_release not in AutoRelease.values:
        raise InvalidInput('auto_release must be "", "passing" or "all".', field="auto_release")
    endpoints = list(dict.fromkeys(endpoints))
    if not endpoints:
        raise InvalidInput("Choose at least one model endpoint.", field="endpoints")
    if len(endpoints) > MAX_ENDPOINTS_PER_JOB:
        raise InvalidInput(f"A job can use at most {MAX_ENDPOINTS_PER_JOB} endpoints.", field="endpoints")
    for endpoint in endpoints:
        if endpoint.project_id not in (None, project.pk):
            raise InvalidInput(f"Endpoint {endpoint.name} belongs to another project.", field="endpoints")
        if not endpoint.is_active:
            raise InvalidInput(f"Endpoint {endpoint.name} is switched off.", field="endpoints")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 64:
        raise InvalidInput("k (samples per prompt per endpoint) must be between 1 and 64.", field="k")
    if batch_size is not None and (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or not 1 <= batch_size <= MAX_BATCH_SIZE
    ):
        raise InvalidInput(f"batch_size must be between 1 and {MAX_BATCH_SIZE} prompts.", field="batch_size")
    task_mode = task_mode or default_mode_for(project)
    if pairs_per_prompt is not None and (
        isinstance(pairs_per_prompt, bool)
        or not isinstance(pairs_per_prompt, int)
        or not 1 <= pairs_per_prompt <= 1000
    ):
        raise InvalidInput("pairs_per_prompt must be between 1 and 1000.", field="pairs_per_prompt")
    check_mode(project=project, mode=task_mode, pairs_per_prompt=pairs_per_prompt)
    if task_mode != PairMode.NONE and k * len(endpoints) < 2:
        raise InvalidInput(
            "Comparison tasks need at least two responses per prompt: raise k or add an endpoint.", field="k"
        )
    sampling = _clean_job_sampling(sampling, k)
    prompt_filter = _clean_prompt_filter(prompt_filter)
    if prompt_filter["mode"] == "ids":  # stored as database ids
        prompt_filter["ids"] = _resolve_prompt_refs(project=project, refs=prompt_filter["ids"])
    prompt_ids = selectors.prompt_ids_for_filter(
        project=project,
        mode=prompt_filter["mode"],
        tag=prompt_filter.get("tag", ""),
        ids=prompt_filter.get("ids"),
    )
    if not prompt_ids:
        raise InvalidInput("No prompt matches the filter.", field="prompt_filter")
    total = len(prompt_ids) * len(endpoints)
    if total > MAX_UNITS_PER_JOB:
        raise InvalidInput(
            f"{total} prompt x endpoint units is more than {MAX_UNITS_PER_JOB} for one job: split it.",
            field="prompt_filter",
        )

    if batch_size is None:  # at most the default, and several batches so that progress moves
        batch_size = min(DEFAULT_BATCH_SIZE, max(1, -(-len(prompt_ids) // MIN_BATCHES_PER_ENDPOINT)))
    job = audit_create(
        GenerationJob,
        actor=actor,
        action="generation.job_create",
        details={
            "endpoints": [e.name for e in endpoints],
            "k": k,
            "prompts": len(prompt_ids),
            "task_mode": task_mode,
            "auto_release": auto_release,
        },
        project=project,
        auto_release=auto_release,
        prompt_filter=prompt_filter,
        k=k,
        sampling=sampling,
        task_mode=task_mode,
        pairs_per_prompt=pairs_per_prompt,
        batch_size=batch_size,
        total_units=total,
    )
    job.endpoints.set(endpoints)
    index = 0
    rows = []
    for endpoint in endpoints:
        for chunk in _chunks(prompt_ids, batch_size):
            rows.append(GenerationBatch(job=job, endpoint=endpoint, index=index, prompt_ids=chunk))
            index += 1
    batches = GenerationBatch.objects.bulk_create(rows, batch_size=1000)
    if enqueue:
        _enqueue_on_commit([b.pk for b in batches])
    return job


def _enqueue_on_commit(batch_ids: Iterable[int]) -> None:
    """One outbox message per batch: sent after commit, re-sent by the sweep if the broker was down."""
    for batch_id in batch_ids:
        outbox_enqueue("generation.run_batch", batch_id)


@transaction.atomic
def job_requeue(*, job: GenerationJob) -> int:
    """Enqueue the job's pending batches again (messages lost with an embedded broker, say).
    Safe at any time: a batch that is already done or running to completion is written once."""
    job = GenerationJob.objects.select_for_update().get(pk=job.pk)
    if job.state not in ACTIVE_STATES:
        raise Conflict(f"The job is {job.state}; only queued or running jobs can be resumed.")
    ids = list(GenerationBatch.objects.filter(job=job, state=BatchState.PENDING).values_list("pk", flat=True))
    _enqueue_on_commit(ids)
    return len(ids)


def batches_requeue_orphaned(*, older_than: timedelta | None = None) -> int:
    """The beat sweep: send again every pending batch of a queued/running job that has no live
    message (none in the outbox or the broker's queue, ``messages_waiting``) and no worker on it
    (no heartbeat, nor a resend, for ``older_than``). A worker SIGKILLed mid-batch loses the
    filesystem broker's message (dropped on receipt, so ``acks_late`` cannot bring it back), and a
    Redis restart can lose the message a worker was taking; this brings the batch back.
    Safe when wrong: a batch is written once however often it runs. Returns how many were sent."""
    from django.conf import settings

    live = messages_waiting("generation.run_batch")
    if live is None:
        return 0
    if older_than is None:
        older_than = timedelta(seconds=getattr(settings, "PREFHUB_GENERATION_ORPHAN_AFTER_S", 120))
    cutoff = timezone.now() - older_than
    candidates = (
        GenerationBatch.objects.filter(state=BatchState.PENDING, job__state__in=ACTIVE_STATES)
        .filter(created_at__lt=cutoff)
        .filter(Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=cutoff))
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=cutoff))
        .values_list("pk", flat=True)[:1000]
    )
    ids = [pk for pk in candidates if pk not in live]
    if ids:
        with transaction.atomic():
            GenerationBatch.objects.filter(pk__in=ids, state=BatchState.PENDING).update(
                enqueued_at=timezone.now()
            )
            _enqueue_on_commit(ids)
        log.warning("re-enqueued %d orphaned generation batch(es): %s", len(ids), ids[:20])
    return len(ids)


@transaction.atomic
def job_cancel(*, job: GenerationJob, actor: AbstractBaseUser | None = None) -> GenerationJob:
    """Stop a queued or running job: pending batches are dropped (a batch already generating
    writes nothing when it finishes); candidates already written stay; no tasks are created."""
    job = GenerationJob.objects.select_for_update().get(pk=job.pk)
    if job.state not in ACTIVE_STATES:
        raise Conflict(f"The job is already {job.get_state_display().lower()}.")
    job_finish(job, state=JobState.CANCELLED)
    GenerationBatch.objects.filter(job=job, state=BatchState.PENDING).update(
        state=BatchState.CANCELLED, finished_at=job.finished_at
    )
    audit_record(actor=actor, project=job.project, action="generation.job_cancel", target=job)
    return job


@transaction.atomic
def job_fail(*, job_id: int, message: str) -> bool:
    """Fail a whole job (an endpoint that cannot work). Returns False if it had already ended."""
    job = GenerationJob.objects.select_for_update().filter(pk=job_id).first()
    if job is None or job.state not in ACTIVE_STATES:
        return False
    jobs.job_fail(job, storable_text(message), started_at=job.started_at or timezone.now())
    GenerationBatch.objects.filter(job=job, state=BatchState.PENDING).update(
        state=BatchState.FAILED, finished_at=job.finished_at
    )
    return True


# --- the worker ------------------------------------------------------------------------------------


@dataclass
class BatchOutcome:
    batch_id: int
    status: str  # "done", "skipped" (already finished, job ended, or gone) or "failed" (job failed)
    written: int = 0
    failed: int = 0
    messages: dict[int, str] = field(default_factory=dict)


def _job_mark_running(job_id: int) -> None:
    now = timezone.now()
    GenerationJob.objects.filter(pk=job_id, state=JobState.QUEUED).update(
        state=JobState.RUNNING, started_at=now
    )


def batch_run(
    *, batch_id: int, retry_transient: bool = False, heartbeat_s: float | None = None
) -> BatchOutcome:
    """Generate one batch and write its candidates once (the Celery task's body).

    Generation runs outside any transaction; ``_batch_commit`` then writes everything at once.
    With ``retry_transient``, a batch whose every prompt failed transiently (server down) raises
    TransientBackendError so the caller can retry later instead of recording failures. A batch that
    another worker is generating now is skipped (its message came twice).
    """
    with jobs.run_alone(GenerationBatch, batch_id) as alone:
        if not alone:
            return BatchOutcome(batch_id, "skipped")
        return _batch_run(batch_id=batch_id, retry_transient=retry_transient, heartbeat_s=heartbeat_s)


def _batch_run(*, batch_id: int, retry_transient: bool, heartbeat_s: float | None) -> BatchOutcome:
    batch = GenerationBatch.objects.select_related("job", "endpoint").filter(pk=batch_id).first()
    if batch is None or batch.state != BatchState.PENDING or batch.job.state not in ACTIVE_STATES:
        return BatchOutcome(batch_id, "skipped")
    job, endpoint = batch.job, batch.endpoint
    if not endpoint.is_active:  # switched off since the job started: it takes no more work
        batch_mark_failed(
            batch_id=batch.pk, message=f"Endpoint {endpoint.name} was switched off before this batch ran."
        )
        return BatchOutcome(batch_id, "failed")
    if batch.attempts >= MAX_BATCH_ATTEMPTS:
        batch_mark_failed(
            batch_id=batch.pk,
            message=f"Gave up after {batch.attempts} attempts: the worker died or was stopped each time "
            "(out of memory?). Try a smaller batch size.",
        )
        return BatchOutcome(batch_id, "failed")
    _job_mark_running(job.pk)
    GenerationBatch.objects.filter(pk=batch.pk).update(attempts=F("attempts") + 1)

    prompts = dict(
        Prompt.objects.filter(pk__in=batch.prompt_ids, project_id=job.project_id).values_list(
            "pk", "messages"
        )
    )
    order = [pid for pid in batch.prompt_ids if pid in prompts]
    failed: dict[int, str] = {
        pid: f"Prompt {pid} was deleted." for pid in batch.prompt_ids if pid not in prompts
    }
    generated: dict[int, list[Generation]] = {}
    params = sampling_for(job=job, endpoint=endpoint, index=batch.index)
    try:
        with jobs.Heartbeat(GenerationBatch, batch.pk, "heartbeat_at", heartbeat_s):
            backend = backends.get_backend(endpoint)
            results = backend.generate([prompts[pid] for pid in order], params) if order else []
    except BackendConfigError as exc:
        job_fail(job_id=job.pk, message=f"Endpoint {endpoint.name}: {exc}")
        return BatchOutcome(batch_id, "failed", messages={0: str(exc)})

    transient = [
        pid
        for pid, result in zip(order, results, strict=True)
        if isinstance(result, PromptError) and result.transient
    ]
    if retry_transient and order and len(transient) == len(order):
        raise TransientBackendError(results[0].message)  # type: ignore[union-attr]
    for pid, result in zip(order, results, strict=True):
        if isinstance(result, PromptError):
            failed[pid] = result.message
        elif len(result) < job.k:
            failed[pid] = f"The backend returned {len(result)} of {job.k} samples."
        elif (longest := max((len(g.text) for g in result[: job.k]), default=0)) > MAX_TEXT_CHARS:
            failed[pid] = (
                f"The backend returned a sample of {longest:,} characters; a candidate holds at most "
                f"{MAX_TEXT_CHARS:,}."
            )
        else:
            generated[pid] = list(result[: job.k])
    return _batch_commit(
        batch_id=batch.pk,
        generated=generated,
        failed=failed,
        params=params,
        model_version=str(getattr(backend, "model_version", "") or "")[:200],
    )


@transaction.atomic
def _batch_commit(
    *,
    batch_id: int,
    generated: dict[int, list[Generation]],
    failed: dict[int, str],
    params: SamplingParams,
    model_version: str,
) -> BatchOutcome:
    """Write a batch's results exactly once (locks: job, then batch)."""
    job_id = GenerationBatch.objects.values_list("job_id", flat=True).get(pk=batch_id)
    job = GenerationJob.objects.select_for_update().get(pk=job_id)
    batch = GenerationBatch.objects.select_for_update().select_related("endpoint").get(pk=batch_id)
    if batch.state != BatchState.PENDING:
        return BatchOutcome(batch_id, "skipped")
    now = timezone.now()
    if job.state not in ACTIVE_STATES:
        batch.state = BatchState.CANCELLED if job.state == JobState.CANCELLED else BatchState.FAILED
        batch.finished_at = now
        batch.save(update_fields=["state", "finished_at"])
        return BatchOutcome(batch_id, "skipped")
    endpoint = batch.endpoint
    sampling = params.to_dict()
    Candidate.objects.bulk_create(
        [
            Candidate(
                prompt_id=pid,
                text=storable_text(gen.text),
                source=CandidateSource.GENERATED,
                model_name=endpoint.model[:300],
                model_version=(gen.model_version or model_version)[:200],
                sampling_params=sampling,
                seed=params.seed,
                generation_job_id=job.pk,
                endpoint_id=endpoint.pk,
                sample_index=i,
                finish_reason=gen.finish_reason,
                metadata={
                    "endpoint": endpoint.name,
                    "prompt_tokens": gen.prompt_tokens,
                    "completion_tokens": gen.completion_tokens,
                },
            )
            for pid, gens in generated.items()
            for i, gen in enumerate(gens)
        ],
        ignore_conflicts=True,
        batch_size=1000,
    )
    _checks_write(job=job, endpoint=endpoint, generated=generated, max_new_tokens=params.max_new_tokens)
    _record_failures(job=job, endpoint_id=endpoint.pk, failed=failed, attempts=batch.attempts)
    batch.state = BatchState.DONE
    batch.finished_at = now
    batch.save(update_fields=["state", "finished_at"])
    _count_units(job, done=len(generated), failed=len(failed))
    return BatchOutcome(batch_id, "done", written=len(generated), failed=len(failed), messages=failed)


def _record_failures(*, job: GenerationJob, endpoint_id: int, failed: dict[int, str], attempts: int) -> None:
    existing = set(Prompt.objects.filter(pk__in=list(failed)).values_list("pk", flat=True))
    GenerationFailure.objects.bulk_create(
        [
            GenerationFailure(
                job=job,
                prompt_id=pid if pid in existing else None,  # a deleted prompt keeps its id in the message
                endpoint_id=endpoint_id,
                message=storable_text(msg)[:5000],
                attempts=max(attempts, 1),
            )
            for pid, msg in failed.items()
        ],
        ignore_conflicts=True,
    )


def _count_units(job: GenerationJob, *, done: int, failed: int) -> None:
    """Bump the counters (F expressions) and finish the job when every unit is settled.
    The caller holds the job's row lock."""
    if done or failed:
        GenerationJob.objects.filter(pk=job.pk).update(
            done_units=F("done_units") + done, failed_units=F("failed_units") + failed
        )
        job.refresh_from_db(fields=["done_units", "failed_units", "state"])
    if job.state in ACTIVE_STATES and job.done_units + job.failed_units >= job.total_units:
        _job_finish(job)


def _job_finish(job: GenerationJob) -> None:
    """running -> done (candidates staged, or released at once with ``auto_release``) or failed
    (nothing generated). Caller holds the row lock."""
    started_at = job.started_at or timezone.now()
    if job.done_units == 0:
        first = (
            GenerationFailure.objects.filter(job=job).order_by("id").values_list("message", flat=True).first()
        )
        message = f"Every prompt failed. First error: {first}" if first else "Every prompt failed."
        jobs.job_fail(job, message, started_at=started_at)
    else:
        job_finish(job, error=job.error, started_at=started_at)
        if job.auto_release and job.task_mode != PairMode.NONE:
            _release(job, which=job.auto_release, actor=None)


# --- staged candidates: automatic checks ---------------------------------------------------------

#: U+FFFD (what a broken decode or a NUL becomes) and C0/C1 controls other than newline and tab.
BAD_CHARS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffd]")


def candidate_checks(
    *,
    text: str,
    finish_reason: str,
    native_finish_reason: str = "",
    completion_tokens: int | None = None,
    max_new_tokens: int | None = None,
) -> dict[str, bool]:
    """The checks one candidate can fail on its own (duplicate and identical need its siblings):
    ``empty`` (nothing visible: ``annotate.validation.is_blank``), ``bad_chars`` (U+FFFD, C0/C1 controls but newline and tab),
    ``over_length`` (its completion used the whole ``max_new_tokens`` budget) and ``stop_reason``
    (it did not end with "stop": cut by length, or the backend said content_filter, abort...)."""
    return {
        "empty": is_blank(text),
        "bad_chars": BAD_CHARS.search(text) is not None,
        "over_length": bool(
            max_new_tokens and completion_tokens is not None and completion_tokens >= max_new_tokens
        ),
        "stop_reason": finish_reason != FINISH_STOP or native_finish_reason not in NATIVE_NORMAL_STOPS,
    }


def _checks_write(
    *,
    job: GenerationJob,
    endpoint: ModelEndpoint,
    generated: dict[int, list[Generation]],
    max_new_tokens: int,
) -> None:
    """Write the checks of a batch's new candidates, compared with their prompts' other candidates
    (earlier endpoints' batches, whose duplicate/identical flags are updated where they change).
    Runs inside ``_batch_commit`` (job row lock held, so no other batch of the job writes checks)."""
    if not generated:
        return
    prompt_ids = list(generated)
    rows = Candidate.objects.filter(
        generation_job=job, endpoint=endpoint, prompt_id__in=prompt_ids
    ).values_list("pk", "prompt_id", "sample_index")
    by_prompt: dict[int, list[tuple[CandidateCheck, str]]] = defaultdict(list)
    earlier = (
        CandidateCheck.objects.filter(job=job, prompt_id__in=prompt_ids)
        .select_related("candidate")
        .only("candidate__text", *CHECK_FIELDS, "passed", "prompt_id", "job_id")
    )
    for check in earlier:
        by_prompt[check.prompt_id].append((check, check.candidate.text.strip()))
    existing = {check.pk for group in by_prompt.values() for check, _ in group}
    new = []
    for candidate_id, prompt_id, index in rows:
        gens = generated.get(prompt_id) or []
        if index is None or index >= len(gens) or candidate_id in existing:
            continue
        gen = gens[index]
        text = storable_text(gen.text)
        check = CandidateCheck(
            candidate_id=candidate_id,
            job=job,
            endpoint=endpoint,
            prompt_id=prompt_id,
            finish_reason=str(gen.native_finish_reason or gen.finish_reason)[:32],
            **candidate_checks(
                text=text,
                finish_reason=gen.finish_reason,
                native_finish_reason=gen.native_finish_reason,
                completion_tokens=gen.completion_tokens,
                max_new_tokens=max_new_tokens,
            ),
        )
        new.append(check)
        by_prompt[prompt_id].append((check, text.strip()))
    changed = _checks_compare(by_prompt)
    CandidateCheck.objects.bulk_create(new, ignore_conflicts=True, batch_size=1000)
    CandidateCheck.objects.bulk_update(
        [check for check in changed if check.pk in existing],
        ["duplicate", "identical", "passed"],
        batch_size=1000,
    )


def _checks_compare(by_prompt: dict[int, list[tuple[CandidateCheck, str]]]) -> list[CandidateCheck]:
    """Set duplicate (same stripped text as an earlier candidate of the prompt: the first copy
    passes), identical pair (every candidate of the prompt has the same text) and passed on each
    check of each prompt's (check, stripped text) list. Returns the checks whose flags changed."""
    changed = []
    for group in by_prompt.values():
        group.sort(key=lambda item: item[0].candidate_id)
        identical = len(group) >= 2 and len({key for _, key in group}) == 1
        seen: set[str] = set()
        for check, key in group:
            duplicate = bool(key) and key in seen
            seen.add(key)
            before = (check.duplicate, check.identical, check.passed)
            check.duplicate, check.identical = duplicate, identical
            check.passed = not any(getattr(check, name) for name in CHECK_FIELDS)
            if (check.duplicate, check.identical, check.passed) != before:
                changed.append(check)
    return changed


# --- staged candidates: release ------------------------------------------------------------------


@transaction.atomic
def job_release(*, job: GenerationJob, which: str, actor: AbstractBaseUser | None = None) -> GenerationJob:
    """Let a finished job's staged candidates into the labeling queue, once.

    ``which``: "all" (every candidate), "passing" (candidates failing a check are left out; a
    prompt left with fewer than 2 candidates makes no task) or "none" (discard: no task). Tasks
    are made as the job's ``task_mode`` says, through annotate's ``tasks_bulk_create``. Locks the
    job's row: a second release, concurrent or later, is a ``Conflict`` (409). Audited."""
    if which not in (ReleaseWhich.ALL, ReleaseWhich.PASSING, ReleaseWhich.NONE):
        raise InvalidInput('Say which candidates to release: "all", "passing" or "none".', field="which")
    job = GenerationJob.objects.select_for_update().get(pk=job.pk)
    if job.released:
        when = timezone.localtime(job.released_at).strftime("%Y-%m-%d %H:%M") if job.released_at else ""
        raise Conflict(
            f"Generation job {job.pk} was already released ({ReleaseWhich(job.released).label.lower()}, "
            f"{when}); a job is released once."
        )
    if job.state not in RELEASABLE_STATES:
        raise Conflict(
            f"Generation job {job.pk} is {job.get_state_display().lower()}: release it once it is done."
        )
    if job.task_mode == PairMode.NONE and which != ReleaseWhich.NONE:
        raise Conflict('This job makes no tasks (task mode "No tasks"): there is nothing to release.')
    _release(job, which=which, actor=actor)
    return job


def _release(job: GenerationJob, *, which: str, actor: AbstractBaseUser | None) -> None:
    """Create the tasks of a release and record it (caller holds the job's row lock)."""
    candidates = Candidate.objects.filter(generation_job=job)
    total = candidates.count()
    if which == ReleaseWhich.NONE:
        chosen, tasks, lonely = candidates.none(), 0, 0
    else:
        chosen = (
            candidates.exclude(generation_check__passed=False)
            if which == ReleaseWhich.PASSING
            else candidates
        )
        tasks, lonely = _create_tasks(job, chosen)
    excluded = total - (chosen.count() if which != ReleaseWhich.NONE else 0)
    values = {
        "released": which,
        "released_at": timezone.now(),
        "released_by": audit_actor(actor),
        "released_tasks": tasks,
        "excluded_candidates": excluded,
    }
    GenerationJob.objects.filter(pk=job.pk).update(**values)
    for name, value in values.items():
        setattr(job, name, value)
    audit_record(
        actor=actor,
        project=job.project,
        action="generation.job_release",
        target=job,
        details={
            "which": which,
            "auto": actor is None and which == job.auto_release,
            "tasks": tasks,
            "candidates": total,
            "excluded_candidates": excluded,
            "prompts_without_task": lonely,
        },
    )


def _create_tasks(job: GenerationJob, candidates) -> tuple[int, int]:
    """Tasks for ``candidates`` (a queryset of the job's), grouped per prompt as ``task_mode``
    says. Returns (tasks created, prompts of the job left with fewer than 2 candidates)."""
    if job.task_mode == PairMode.NONE:
        return 0, 0
    project = job.project
    by_prompt: dict[int, list[int]] = defaultdict(list)
    rows = candidates.order_by("prompt_id", "endpoint_id", "sample_index").values_list("pk", "prompt_id")
    for candidate_id, prompt_id in rows.iterator(chunk_size=5000):
        by_prompt[prompt_id].append(candidate_id)
    rng = random.Random(int(job.sampling.get("seed", 0)))
    specs = [
        TaskSpec(prompt_id=prompt_id, candidate_ids=group)
        for prompt_id, ids in sorted(by_prompt.items())
        for group in candidate_groups(
            ids, mode=job.task_mode, rng=rng, pairs_per_prompt=job.pairs_per_prompt, k=project.ranking_k
        )
    ]
    prompts = Candidate.objects.filter(generation_job=job).values("prompt_id").distinct().count()
    lonely = prompts - sum(1 for ids in by_prompt.values() if len(ids) >= 2)
    created = tasks_bulk_create(project=project, specs=specs, generation_job_id=job.pk, ids_only=True)
    return len(created), lonely


@transaction.atomic
def batch_mark_failed(*, batch_id: int, message: str) -> bool:
    """Record every unit of a batch as failed (its task gave up: retries exhausted or an
    unexpected error). Returns False if the batch had already settled."""
    job_id = GenerationBatch.objects.filter(pk=batch_id).values_list("job_id", flat=True).first()
    if job_id is None:
        return False
    job = GenerationJob.objects.select_for_update().get(pk=job_id)
    batch = GenerationBatch.objects.select_for_update().get(pk=batch_id)
    if batch.state != BatchState.PENDING:
        return False
    batch.state = BatchState.FAILED
    batch.finished_at = timezone.now()
    batch.save(update_fields=["state", "finished_at"])
    if job.state not in ACTIVE_STATES:
        return False
    _record_failures(
        job=job,
        endpoint_id=batch.endpoint_id,
        failed=dict.fromkeys(batch.prompt_ids, message),
        attempts=batch.attempts,
    )
    _count_units(job, done=0, failed=len(batch.prompt_ids))
    return True


def job_run_inline(
    *, job: GenerationJob, on_progress: Callable[[GenerationJob], None] | None = None
) -> GenerationJob:
    """Run a job's pending batches in this process, in order (the CLI's --inline; tests)."""
    ids = list(
        GenerationBatch.objects.filter(job=job, state=BatchState.PENDING)
        .order_by("index")
        .values_list("pk", flat=True)
    )
    for batch_id in ids:
        try:
            batch_run(batch_id=batch_id)
        except Exception as exc:
            log.exception("generation batch %s failed", batch_id)
            batch_mark_failed(batch_id=batch_id, message=f"{type(exc).__name__}: {exc}")
        job.refresh_from_db()
        if on_progress is not None:
            on_progress(job)
        if job.state not in ACTIVE_STATES:
            break
    job.refresh_from_db()
    return job
