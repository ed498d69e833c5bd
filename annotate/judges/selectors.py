"""AI judge reads: judges, jobs, suggestions, routing summaries and the labeling page's suggestion."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Case, CharField, Count, Exists, F, OuterRef, Q, QuerySet, Value, When

from annotate.judges.rubric import allowed_verdicts
from annotate.models import (
    Adjudication,
    Annotation,
    AnnotationReview,
    AnnotationSource,
    Assignment,
    AssignmentState,
    Judge,
    JudgeJob,
    JudgeSuggestion,
    Project,
    RerouteJob,
    RoutingDecision,
    Task,
    TaskCandidate,
    TaskKind,
)
from annotate.models_judges import SuggestionStatus
from core.jobs import ACTIVE_STATES


def judges_for_project(*, project: Project) -> QuerySet[Judge]:
    return Judge.objects.filter(project=project).select_related("endpoint").order_by("name")


def answered(prefix: str = "") -> Q:
    """A suggestion that is an answer from its judge (it did not fail), as a filter; ``prefix``
    reaches it through a relation (``"suggestions__"``)."""
    return ~Q(**{f"{prefix}status": SuggestionStatus.FAILED})


def judged_task_ids(judge: Judge):
    """The tasks this judge has an answer for, as a subquery (what "only tasks not yet judged" skips)."""
    return JudgeSuggestion.objects.filter(answered(), judge=judge).values("task_id")


def newest_answers(suggestions) -> dict[int, dict[int, JudgeSuggestion]]:
    """``{task id: {judge id: suggestion}}``: per task and judge, its newest suggestion that is not
    a failure (a failure says nothing about the pair: a server down after an earlier answer leaves
    that answer standing), else its newest failure. ``suggestions`` come newest job first within
    each (task, judge). The one rule for which answer of a judge counts: routing, pre-annotation
    and the report's judge-human agreement."""
    out: dict[int, dict[int, JudgeSuggestion]] = {}
    for s in suggestions:
        per = out.setdefault(s.task_id, {})
        kept = per.get(s.judge_id)
        if kept is None or (kept.status == SuggestionStatus.FAILED and s.status != SuggestionStatus.FAILED):
            per[s.judge_id] = s
    return out


def judging_now(judge: Judge) -> tuple[list[int], set[int]]:
    """(ids of this judge's queued or running jobs, the tasks they will judge): what "only tasks not
    judged yet" also skips, so pressing Run twice does not judge and bill the same tasks twice."""
    active = JudgeJob.objects.filter(judge=judge, state__in=ACTIVE_STATES).order_by("pk")
    rows = list(active.values_list("pk", "task_ids"))
    return [pk for pk, _ in rows], {task_id for _, ids in rows for task_id in ids or ()}


def judges_with_todo(*, project: Project) -> tuple[list[Judge], int]:
    """The project's judges, each with ``todo``: how many of the project's tasks it has no answer
    for yet (what "only tasks not yet judged" runs), and the number of tasks."""
    total = Task.objects.filter(project=project).count()
    judges = list(judges_for_project(project=project))
    for judge in judges:  # a few judges; one count of distinct tasks each (hashed, not sorted)
        judge.judged = judged_task_ids(judge).distinct().count()
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


#: Why re-routing leaves a task alone, in the order they are checked: a manager's final label, a
#: manager's review of one of its labels, or a human's label or live lease.
LEFT_ALONE_REASONS = ("adjudicated", "reviewed", "human_work")


@dataclass
class RerouteScope:
    """What re-routing would do now: ``task_ids`` it routes again (judged by an active judge or
    already decided, and no human work on them), ``left_alone`` the judged or decided tasks it
    leaves as they are (task id: reason, one of ``LEFT_ALONE_REASONS``)."""

    task_ids: list[int] = field(default_factory=list)
    left_alone: dict[int, str] = field(default_factory=dict)

    def left_alone_why(self) -> dict[str, int]:
        counts = {r: 0 for r in LEFT_ALONE_REASONS}
        for reason in self.left_alone.values():
            counts[reason] += 1
        return {r: n for r, n in counts.items() if n}


def _reroute_candidates(*, project: Project, task_ids: list[int] | None = None) -> QuerySet[Task]:
    """The one definition of what re-routing looks at: the project's tasks with a routing decision
    or an answer of an active judge (only ``task_ids`` among them when given), each annotated with
    ``why`` it is left alone ("" when its route can still change; else the first of
    ``LEFT_ALONE_REASONS`` that holds: an adjudication, a review of any of its annotations, a human's
    annotation (not a judge's) or a live lease, expired ones too since the sweep has not given their
    slot back yet) and its ``route`` now (None: no decision)."""
    judged = JudgeSuggestion.objects.filter(task_id=OuterRef("pk"), judge__is_active=True)
    tasks = Task.objects.filter(project=project).filter(Q(routing__isnull=False) | Exists(judged))
    if task_ids is not None:
        tasks = tasks.filter(pk__in=task_ids)
    # uncorrelated sets (``id IN (SELECT ...)``): the database hashes each once
    of_project = {"task__project": project}
    adjudicated = Adjudication.objects.filter(**of_project).values("task_id")
    reviewed = AnnotationReview.objects.filter(annotation__task__project=project).values(
        "annotation__task_id"
    )
    human = Annotation.objects.filter(**of_project).exclude(source=AnnotationSource.JUDGE).values("task_id")
    leased = Assignment.objects.filter(**of_project, state=AssignmentState.LIVE).values("task_id")
    return tasks.annotate(
        why=Case(
            When(pk__in=adjudicated, then=Value("adjudicated")),
            When(pk__in=reviewed, then=Value("reviewed")),
            When(Q(pk__in=human) | Q(pk__in=leased), then=Value("human_work")),
            default=Value(""),
            output_field=CharField(),
        ),
        route=F("routing__route"),
    )


def reroute_scope(*, project: Project, task_ids: list[int] | None = None) -> RerouteScope:
    """The tasks re-routing considers (``_reroute_candidates``), split into the ones whose route can
    still change and the ones left alone, with the reason. Read it again under the tasks' row locks
    before acting."""
    scope = RerouteScope()
    rows = _reroute_candidates(project=project, task_ids=task_ids).order_by("id").values_list("id", "why")
    for task_id, why in rows:
        if why:
            scope.left_alone[task_id] = why
        else:
            scope.task_ids.append(task_id)
    return scope


def reroute_preview(*, project: Project) -> dict:
    """The Judges page's confirmation of the re-route button: how many tasks it routes again (and
    how they are routed now) and how many it leaves alone, by reason. Counted in the database (the
    page is opened far more often than the button is pressed)."""
    counts = _reroute_candidates(project=project).order_by().values("why", "route").annotate(n=Count("id"))
    routes = {"judge": 0, "human": 0, None: 0}
    why: dict[str, int] = {}
    for row in counts:
        if row["why"]:
            why[row["why"]] = why.get(row["why"], 0) + row["n"]
        else:
            routes[row["route"]] = routes.get(row["route"], 0) + row["n"]
    in_scope = sum(routes.values())
    return {
        "in_scope": in_scope,
        "to_judges": routes["judge"],
        "to_humans": routes["human"],
        "undecided": routes[None],
        "left_alone": sum(why.values()),
        "left_alone_why": {r: why[r] for r in LEFT_ALONE_REASONS if why.get(r)},
    }


def reroute_job_latest(*, project: Project) -> RerouteJob | None:
    """The project's newest re-route (running, or the last one that ended), or None."""
    return RerouteJob.objects.filter(project=project).select_related("created_by").first()


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
    reason = RoutingDecision.objects.filter(task=task).values_list("reason", flat=True).first()
    if reason in UNSURE_REASONS:
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
