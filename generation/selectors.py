"""Reads of the generation app. No writes here."""

from __future__ import annotations

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from annotate.models import Candidate, Project, Prompt, Task
from annotate.services.tasks import tasks_per_prompt
from core.jobs import job_status_payload
from generation.models import (
    CHECK_FIELDS,
    CHECKS,
    RELEASABLE_STATES,
    CandidateCheck,
    GenerationFailure,
    GenerationJob,
    ModelEndpoint,
    ReleaseWhich,
)


def endpoints_for_project(*, project: Project, active_only: bool = False) -> QuerySet[ModelEndpoint]:
    """Endpoints a project may use: its own and the shared ones (no project)."""
    qs = ModelEndpoint.objects.filter(Q(project=project) | Q(project__isnull=True))
    if active_only:
        qs = qs.filter(is_active=True)
    return qs.order_by("name")


def endpoint_get(*, project: Project, name: str) -> ModelEndpoint | None:
    return endpoints_for_project(project=project).filter(name=name).first()


def _count_per_job(model) -> Coalesce:
    rows = model.objects.filter(generation_job=OuterRef("pk")).order_by().values("generation_job")
    return Coalesce(Subquery(rows.annotate(n=Count("pk")).values("n"), output_field=IntegerField()), 0)


def jobs_for_project(*, project: Project) -> QuerySet[GenerationJob]:
    """Newest first, with ``candidate_count`` and ``task_count`` (no query per job)."""
    return (
        GenerationJob.objects.filter(project=project)
        .select_related("created_by", "project", "released_by")
        .prefetch_related("endpoints")
        .annotate(candidate_count=_count_per_job(Candidate), task_count=_count_per_job(Task))
        .order_by("-created_at", "-id")
    )


def jobs_awaiting_release(*, project: Project, limit: int = 50) -> list[GenerationJob]:
    """Jobs that have ended with staged candidates nobody has released or discarded yet (what a
    manager or researcher should review), oldest first, with ``candidate_count`` and
    ``task_count``; at most ``limit``. One query (and one for the endpoints)."""
    return list(
        jobs_for_project(project=project)
        .filter(state__in=RELEASABLE_STATES, released="", candidate_count__gt=0)
        .order_by("finished_at", "id")[:limit]
    )


def job_get(*, project: Project | None = None, job_id: int) -> GenerationJob | None:
    qs = GenerationJob.objects.select_related("project", "created_by", "released_by").prefetch_related(
        "endpoints"
    )
    if project is not None:
        qs = qs.filter(project=project)
    return qs.filter(pk=job_id).first()


def job_failures(*, job: GenerationJob, limit: int = 500) -> QuerySet[GenerationFailure]:
    return (
        GenerationFailure.objects.filter(job=job).select_related("prompt", "endpoint").order_by("id")[:limit]
    )


def job_status(*, job: GenerationJob) -> dict:
    """The small JSON the job page polls (and the API returns): state, counters, release."""
    settled = job.done_units + job.failed_units
    status = {
        **job_status_payload(job),
        "total_units": job.total_units,
        "done_units": job.done_units,
        "failed_units": job.failed_units,
        "percent": progress_percent(settled, job.total_units),
        "candidates": _annotated_or_count(job, "candidate_count", Candidate),
        "tasks": _annotated_or_count(job, "task_count", Task),
        "release": release_status(job),
    }
    return status


def progress_percent(settled: int, total: int) -> int:
    """Whole percent, never 0 once a unit settled nor 100 before the last one (rounding 199 of
    200 up would show a running job as complete)."""
    if not total:
        return 100
    percent = 100 * settled // total
    if 0 < settled < total:
        percent = min(max(percent, 1), 99)
    return min(percent, 100)


def release_status(job: GenerationJob) -> dict:
    """Where the job's candidates are: staged (waiting for a decision) or released (which, when,
    by whom, tasks created, candidates left out)."""
    return {
        "state": "released" if job.released else ("staged" if job.job_finished else "generating"),
        "auto_release": job.auto_release or None,
        "which": job.released or None,
        "released_at": job.released_at.isoformat() if job.released_at else None,
        "released_by": job.released_by.get_username() if job.released_by_id and job.released_by else None,
        "released_tasks": job.released_tasks,
        "excluded_candidates": job.excluded_candidates,
    }


def job_staged_summary(*, job: GenerationJob) -> dict:
    """Per endpoint (in the job's order): candidates, passing ones and counts per failed check;
    and what each release would create (candidates and tasks). A few aggregate queries."""
    counts = {
        row["endpoint_id"]: row
        for row in CandidateCheck.objects.filter(job=job)
        .order_by()
        .values("endpoint_id")
        .annotate(
            candidates=Count("pk"),
            passing=Count("pk", filter=Q(passed=True)),
            **{name: Count("pk", filter=Q(**{name: True})) for name in CHECK_FIELDS},
        )
    }
    endpoints = []
    for endpoint in job.endpoints.all():
        row = counts.get(endpoint.pk, {})
        endpoints.append(
            {
                "endpoint": endpoint.name,
                "model": endpoint.model,
                "candidates": row.get("candidates", 0),
                "passing": row.get("passing", 0),
                "failed": {name: row.get(name, 0) for name in CHECK_FIELDS},
            }
        )
    candidates = Candidate.objects.filter(generation_job=job)
    per_prompt_all = _per_prompt(candidates)
    per_prompt_passing = _per_prompt(candidates.exclude(generation_check__passed=False))
    return {
        "endpoints": endpoints,
        "checks": [{"name": name, "label": label, "help": help} for name, label, help in CHECKS],
        "unchecked": candidates.filter(generation_check__isnull=True).count(),
        "would_release": {
            ReleaseWhich.ALL.value: _would_create(job, per_prompt_all),
            ReleaseWhich.PASSING.value: _would_create(job, per_prompt_passing),
        },
    }


def _per_prompt(candidates: QuerySet[Candidate]) -> list[int]:
    return list(candidates.order_by().values("prompt_id").annotate(n=Count("pk")).values_list("n", flat=True))


def _would_create(job: GenerationJob, per_prompt: list[int]) -> dict:
    return {
        "candidates": sum(per_prompt),
        "tasks": sum(
            tasks_per_prompt(n, mode=job.task_mode, pairs_per_prompt=job.pairs_per_prompt) for n in per_prompt
        ),
    }


CHECK_LABELS = {name: label for name, label, _ in CHECKS}


def job_staged_samples(*, job: GenerationJob, per_endpoint: int = 8) -> list[dict]:
    """Sample outputs per endpoint for the job page: up to half of them failing, chosen so that
    every kind of failure the endpoint has shows at least once where possible (the reviewer's first
    question is what failed and why), the rest passing; each with its failed checks. Three
    queries per endpoint."""
    out = []
    for endpoint in job.endpoints.all():
        base = CandidateCheck.objects.filter(job=job, endpoint=endpoint).order_by("candidate_id")
        failing_rows = list(base.filter(passed=False).values_list("candidate_id", *CHECK_FIELDS)[:500])
        chosen: list[int] = []
        uncovered = set(CHECK_FIELDS)
        remaining = [
            (row[0], {n for n, bad in zip(CHECK_FIELDS, row[1:], strict=True) if bad}) for row in failing_rows
        ]
        while remaining and len(chosen) < per_endpoint // 2:
            best = max(remaining, key=lambda r: (len(r[1] & uncovered), -r[0]))
            if not best[1] & uncovered and uncovered:
                uncovered = set()  # every failure kind shown: take the next ones in order
                continue
            chosen.append(best[0])
            uncovered -= best[1]
            remaining.remove(best)
        passing = list(
            base.filter(passed=True).values_list("candidate_id", flat=True)[: per_endpoint - len(chosen)]
        )
        rows = (
            CandidateCheck.objects.filter(candidate_id__in=chosen + passing)
            .select_related("candidate", "prompt")
            .order_by("candidate_id")
        )
        out.append(
            {
                "endpoint": endpoint.name,
                "samples": [
                    {
                        "candidate": check.candidate_id,
                        "prompt": _last_user_text(check.prompt.messages),
                        "text": check.candidate.text,
                        "finish_reason": check.finish_reason,
                        "failed": check.failed,
                        "badges": [CHECK_LABELS[name] for name in check.failed],
                    }
                    for check in rows
                ],
            }
        )
    return out


def _last_user_text(messages: object) -> str:
    if isinstance(messages, list):
        for turn in reversed(messages):
            if isinstance(turn, dict) and isinstance(turn.get("content"), str):
                return turn["content"]
    return ""


def _annotated_or_count(job: GenerationJob, attribute: str, model) -> int:
    value = getattr(job, attribute, None)
    return value if value is not None else model.objects.filter(generation_job=job).count()


def prompt_ids_for_filter(
    *, project: Project, mode: str, tag: str = "", ids: list[int] | None = None
) -> list[int]:
    """Ids of the project's prompts a job covers, in id order.

    ``all``; ``untagged`` (no tags); ``tag`` (carries ``tag``); ``ids`` (those of ``ids`` that
    belong to the project). Tags are matched in Python so SQLite and PostgreSQL agree.
    """
    qs = Prompt.objects.filter(project=project).order_by("id")
    if mode == "all":
        return list(qs.values_list("id", flat=True))
    if mode == "ids":
        return list(qs.filter(pk__in=ids or []).values_list("id", flat=True))
    out = []
    for pk, tags in qs.values_list("id", "tags").iterator(chunk_size=5000):
        tags = tags if isinstance(tags, list) else []
        if (mode == "untagged" and not tags) or (mode == "tag" and tag in tags):
            out.append(pk)
    return out


def prompt_ids_by_external_id(*, project: Project, external_ids: list[str]) -> dict[str, int]:
    """{imported id: database id} of the project's prompts imported with one of ``external_ids``."""
    if not external_ids:
        return {}
    rows = Prompt.objects.filter(project=project, external_id__in=external_ids).order_by("id")
    out: dict[str, int] = {}
    for external_id, pk in rows.values_list("external_id", "id"):
        out.setdefault(external_id, pk)
    return out


def prompt_tags(*, project: Project, limit: int = 200) -> list[str]:
    """Tags in use in a project (for the job form), most common first."""
    counts: dict[str, int] = {}
    for tags in (
        Prompt.objects.filter(project=project).values_list("tags", flat=True).iterator(chunk_size=5000)
    ):
        for tag in tags if isinstance(tags, list) else []:
            if isinstance(tag, str):
                counts[tag] = counts.get(tag, 0) + 1
    return [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:limit]
