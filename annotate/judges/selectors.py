"""AI judge reads: judges, jobs, suggestions, routing summaries and the labeling page's suggestion."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from annotate.judges.rubric import allowed_verdicts
from annotate.models import (
    Assignment,
    Judge,
    JudgeJob,
    JudgeSuggestion,
    Project,
    RoutingDecision,
    Task,
    TaskCandidate,
    TaskKind,
)
from annotate.models_judges import SuggestionStatus


def judges_for_project(*, project: Project) -> QuerySet[Judge]:
    return Judge.objects.filter(project=project).select_related("endpoint").order_by("name")


def judges_with_todo(*, project: Project) -> tuple[list[Judge], int]:
    """The project's judges, each with ``todo``: how many of the project's tasks it has no answer
    for yet (what "only tasks not yet judged" runs), and the number of tasks."""
    total = Task.objects.filter(project=project).count()
    judges = list(
        judges_for_project(project=project).annotate(
            judged=Count(
                "suggestions__task",
                filter=~Q(suggestions__status=SuggestionStatus.FAILED),
                distinct=True,
            )
        )
    )
    for judge in judges:
        judge.todo = max(total - judge.judged, 0)
    return judges, total


def judge_get(*, project: Project, judge_id: int) -> Judge | None:
    return Judge.objects.filter(project=project, pk=judge_id).select_related("endpoint").first()


def judge_jobs_for_project(*, project: Project) -> QuerySet[JudgeJob]:
    return (
        JudgeJob.objects.filter(project=project).select_related("judge", "created_by").order_by("-created_at")
    )


def judge_job_get(*, project: Project, job_id: int) -> JudgeJob | None:
    return JudgeJob.objects.filter(project=project, pk=job_id).select_related("judge__endpoint").first()


def suggestions_for_job(*, job: JudgeJob, limit: int = 500) -> list[JudgeSuggestion]:
    return list(
        JudgeSuggestion.objects.filter(job=job).select_related("task__routing").order_by("task_id")[:limit]
    )


def suggestion_counts(*, job: JudgeJob) -> dict[str, int]:
    rows = JudgeSuggestion.objects.filter(job=job).values_list("status").annotate(n=Count("id")).order_by()
    counts = {s: 0 for s in SuggestionStatus.values}
    counts.update(dict(rows))
    counts["failed_transient"] = JudgeSuggestion.objects.filter(
        job=job, status=SuggestionStatus.FAILED, transient=True
    ).count()
    return counts


def routing_summary(*, project: Project) -> list[dict]:
    rows = (
        RoutingDecision.objects.filter(project=project)
        .values("route", "reason")
        .annotate(n=Count("id"))
        .order_by("route", "reason")
    )
    return list(rows)


def pre_annotation_for(*, task: Task) -> JudgeSuggestion | None:
    """The suggestion a labeler's page preselects, when the project turned pre-annotation on.

    The rule: a verdict is preselected only where the judges are sure of the pair. Nothing is
    preselected when routing sent the task to humans because the judges were unsure
    (``UNSURE_REASONS``: position-inconsistent, no answer, disagreeing, a verdict the project does
    not allow), nor when the active judges' current suggestions say so (``judges_unsure``, also
    with routing off). Otherwise the newest consistent verdict of an active judge is shown, with
    its strength (a weak verdict, ``low_strength``, is shown as weak)."""
    from annotate.judges.services import UNSURE_REASONS, judges_unsure, latest_suggestions

    project = task.project
    if not project.judge_pre_annotation:
        return None
    decision = RoutingDecision.objects.filter(task=task).values_list("route", "reason").first()
    if decision is not None and decision[1] in UNSURE_REASONS:
        return None
    suggestions = latest_suggestions(project=project, task_ids=[task.pk]).get(task.pk, [])
    if judges_unsure(project, suggestions) in UNSURE_REASONS:
        return None  # also a tie or "both bad" the project does not (any more) allow
    ok = [s for s in suggestions if s.status == SuggestionStatus.OK and s.choice in allowed_verdicts(project)]
    return max(ok, key=lambda s: s.job_id, default=None)


def task_slot_ids(*, task: Task) -> list[int]:
    return list(
        TaskCandidate.objects.filter(task=task).order_by("slot").values_list("candidate_id", flat=True)
    )


def pre_annotation_for_lease(*, project: Project, task_id: int, assignment_id: int) -> dict | None:
    """What the labeling page preselects for this lease, in its screen terms (``left``/``right``,
    ``tie``, ``both_bad``), with strength and rationale; None (and no query) unless the project
    pre-annotates a pairwise task and an active judge gave a consistent verdict."""
    if project.kind != TaskKind.PAIRWISE or not project.judge_pre_annotation:
        return None
    task = Task.objects.select_related("project").get(pk=task_id)
    suggestion = pre_annotation_for(task=task)
    if suggestion is None:
        return None
    value = suggestion.choice
    if value in ("a", "b"):
        slots = task_slot_ids(task=task)
        winner = slots[0] if value == "a" else slots[1]
        shown = Assignment.objects.values_list("shown_order", flat=True).get(pk=assignment_id) or []
        value = "left" if shown and shown[0] == winner else "right"
    return {"value": value, "strength": suggestion.strength, "rationale": suggestion.rationale}
