"""Reads that are more than a ``get``. No writes here."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, F, Prefetch, Q, QuerySet

from annotate.models import (
    Annotation,
    Assignment,
    AssignmentState,
    Guideline,
    GuidelineAck,
    Membership,
    Project,
    Task,
    TaskCandidate,
)


def projects_for_user(*, user: AbstractBaseUser) -> QuerySet[Project]:
    """Projects the user can see: every project for a superuser, else active memberships."""
    qs = Project.objects.all()
    if not user.is_superuser:
        qs = qs.filter(memberships__user=user, memberships__is_active=True).distinct()
    return qs.order_by("name")


def project_get(*, slug: str) -> Project | None:
    return Project.objects.filter(slug=slug).first()


def guideline_current(*, project: Project) -> Guideline | None:
    return Guideline.objects.filter(project=project).order_by("-version").first()


def guideline_pending_ack(*, project: Project, user: AbstractBaseUser) -> Guideline | None:
    """The current guideline version if this user has not acknowledged it yet."""
    current = guideline_current(project=project)
    if current is None:
        return None
    if GuidelineAck.objects.filter(guideline=current, user=user).exists():
        return None
    return current


def assignment_with_task(*, assignment_id: int) -> Assignment | None:
    """A lease with its task, prompt and candidates in display order (3 queries)."""
    assignment = (
        Assignment.objects.select_related("task", "task__prompt", "task__project")
        .prefetch_related(
            Prefetch("task__slots", queryset=TaskCandidate.objects.select_related("candidate").order_by("slot"))
        )
        .filter(pk=assignment_id)
        .first()
    )
    return assignment


def assignment_candidates_in_display_order(*, assignment: Assignment) -> list:
    by_id = {slot.candidate_id: slot.candidate for slot in assignment.task.slots.all()}
    return [by_id[cid] for cid in assignment.shown_order if cid in by_id]


def labeler_progress(*, project: Project, user: AbstractBaseUser) -> dict[str, int]:
    """What one labeler has done in a project and how much is still open to them (approximate:
    open tasks with a free slot that they have not touched)."""
    done = Annotation.objects.filter(task__project=project, labeler=user).count()
    skipped = Assignment.objects.filter(task__project=project, labeler=user, state=AssignmentState.SKIPPED).count()
    touched = Assignment.objects.filter(
        task__project=project,
        labeler=user,
        state__in=[AssignmentState.LIVE, AssignmentState.SUBMITTED, AssignmentState.SKIPPED],
    ).values("task_id")
    remaining = (
        Task.objects.filter(project=project)
        .filter(claims__lt=F("target_labels"))
        .exclude(pk__in=touched)
        .count()
    )
    return {"done": done, "skipped": skipped, "remaining": remaining}


def project_progress(*, project: Project) -> dict[str, int]:
    """Tasks done (every label in), in progress (some labels or live leases), untouched."""
    tasks = Task.objects.filter(project=project)
    total = tasks.count()
    done = tasks.annotate(n=Count("annotations")).filter(n__gte=F("target_labels")).count()
    untouched = tasks.filter(claims=0).count()
    return {
        "total": total,
        "done": done,
        "in_progress": max(total - done - untouched, 0),
        "untouched": untouched,
        "live_leases": Assignment.objects.filter(task__project=project, state=AssignmentState.LIVE).count(),
        "annotations": Annotation.objects.filter(task__project=project).count(),
    }


def memberships_for_project(*, project: Project) -> QuerySet[Membership]:
    return Membership.objects.filter(project=project).select_related("user").order_by("user__username", "role")
