"""Reads of the generation app. No writes here."""

from __future__ import annotations

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from annotate.models import Candidate, Project, Prompt, Task
from core.jobs import job_status_payload
from generation.models import GenerationFailure, GenerationJob, ModelEndpoint


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
        .select_related("created_by", "project")
        .prefetch_related("endpoints")
        .annotate(candidate_count=_count_per_job(Candidate), task_count=_count_per_job(Task))
        .order_by("-created_at", "-id")
    )


def job_get(*, project: Project | None = None, job_id: int) -> GenerationJob | None:
    qs = GenerationJob.objects.select_related("project", "created_by").prefetch_related("endpoints")
    if project is not None:
        qs = qs.filter(project=project)
    return qs.filter(pk=job_id).first()


def job_failures(*, job: GenerationJob, limit: int = 500) -> QuerySet[GenerationFailure]:
    return (
        GenerationFailure.objects.filter(job=job).select_related("prompt", "endpoint").order_by("id")[:limit]
    )


def job_status(*, job: GenerationJob) -> dict:
    """The small JSON the job page polls (and the API returns): state and counters."""
    settled = job.done_units + job.failed_units
    status = {
        **job_status_payload(job),
        "total_units": job.total_units,
        "done_units": job.done_units,
        "failed_units": job.failed_units,
        "percent": round(100 * settled / job.total_units) if job.total_units else 100,
        "candidates": _annotated_or_count(job, "candidate_count", Candidate),
        "tasks": _annotated_or_count(job, "task_count", Task),
    }
    return status


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
