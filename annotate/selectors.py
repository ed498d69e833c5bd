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


def project_get(*, slug: str) -> Project | None:
    return Project.objects.filter(slug=slug).first()


def guideline_current(*, project: Project, fields: tuple[str, ...] | None = None) -> Guideline | None:
    """The newest guideline version; ``fields`` limits the columns read (the body can be large)."""
    qs = Guideline.objects.filter(project=project).order_by("-version")
    if fields:
        qs = qs.only(*fields)
    return qs.first()


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
            Prefetch(
                "task__slots", queryset=TaskCandidate.objects.select_related("candidate").order_by("slot")
            )
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
    skipped = Assignment.objects.filter(
        task__project=project, labeler=user, state=AssignmentState.SKIPPED
    ).count()
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
    return (
        Membership.objects.filter(project=project).select_related("user").order_by("user__username", "role")
    )


# --- Pages: the labeler's and the manager's (appended for the web UI) ---------------------------


def labeler_live_lease_count(*, project: Project, user: AbstractBaseUser) -> int:
    from django.utils import timezone

    return Assignment.objects.filter(
        task__project=project, labeler=user, state=AssignmentState.LIVE, expires_at__gt=timezone.now()
    ).count()


def labeler_progress_bar(*, project: Project, user: AbstractBaseUser) -> dict[str, int]:
    """``labeler_progress`` plus the tasks this labeler holds right now, as the page shows them:
    ``done`` of ``total`` with ``left`` still to judge (approximate, as labeler_progress is)."""
    progress = labeler_progress(project=project, user=user)
    left = progress["remaining"] + labeler_live_lease_count(project=project, user=user)
    total = progress["done"] + left
    percent = round(100 * progress["done"] / total) if total else 100
    return {**progress, "left": left, "total": total, "percent": percent}


def guideline_versions(*, project: Project) -> QuerySet[Guideline]:
    """Every version, newest first, with its author and how many people acknowledged it."""
    return (
        Guideline.objects.filter(project=project)
        .select_related("author")
        .annotate(ack_count=Count("acks"))
        .order_by("-version")
    )


def guideline_get(*, project: Project, version: int) -> Guideline | None:
    return Guideline.objects.filter(project=project, version=version).select_related("author").first()


def _median(values: list[int]) -> float | None:
    if not values:
        return None
    values = sorted(values)
    mid = len(values) // 2
    return float(values[mid]) if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def labeler_throughput(
    *, project: Project, now=None, window_hours: int = 24, median_days: int = 7
) -> list[dict]:
    """Per labeler in a project (members with the labeler role, plus anyone who annotated):

    * ``total``: human annotations ever, ``flagged`` of them, ``skipped`` tasks;
    * ``last_window``: annotations in the last ``window_hours`` hours;
    * ``per_hour``: those divided by the labeler's *active* hours in the window (distinct clock
      hours in which they submitted something), i.e. their pace while working; None without any;
    * ``median_ms``: median time on task over the last ``median_days`` days;
    * ``last_at``: their latest annotation.

    A fixed number of queries whatever the number of labelers.
    """
    from datetime import timedelta

    from django.db.models import Max
    from django.utils import timezone

    from annotate.models import AnnotationSource, Role

    now = now or timezone.now()
    human = Annotation.objects.filter(task__project=project, source=AnnotationSource.HUMAN)
    totals = {
        row["labeler_id"]: row
        for row in human.values("labeler_id").annotate(
            total=Count("id"), flagged=Count("id", filter=Q(flagged=True)), last_at=Max("created_at")
        )
    }
    skipped = dict(
        Assignment.objects.filter(task__project=project, state=AssignmentState.SKIPPED)
        .values("labeler_id")
        .annotate(n=Count("id"))
        .values_list("labeler_id", "n")
    )
    window_start = now - timedelta(hours=window_hours)
    in_window: dict[int, list] = {}
    for labeler_id, created_at in human.filter(created_at__gt=window_start, created_at__lte=now).values_list(
        "labeler_id", "created_at"
    ):
        in_window.setdefault(labeler_id, []).append(created_at)
    times: dict[int, list[int]] = {}
    for labeler_id, ms in human.filter(
        created_at__gt=now - timedelta(days=median_days), time_spent_ms__isnull=False
    ).values_list("labeler_id", "time_spent_ms"):
        times.setdefault(labeler_id, []).append(ms)

    members = {
        m.user_id: m
        for m in Membership.objects.filter(project=project, role=Role.LABELER).select_related("user")
    }
    user_ids = set(members) | set(totals)
    from django.contrib.auth import get_user_model

    users = {u.pk: u for u in get_user_model().objects.filter(pk__in=user_ids)}
    rows = []
    for user_id in user_ids:
        user = users.get(user_id)
        if user is None:
            continue
        stamps = in_window.get(user_id, [])
        active_hours = len({s.replace(minute=0, second=0, microsecond=0) for s in stamps})
        row = totals.get(user_id, {})
        membership = members.get(user_id)
        rows.append(
            {
                "user": user,
                "is_member": membership is not None,
                "is_active": bool(membership and membership.is_active),
                "total": row.get("total", 0),
                "flagged": row.get("flagged", 0),
                "skipped": skipped.get(user_id, 0),
                "last_at": row.get("last_at"),
                "last_window": len(stamps),
                "active_hours": active_hours,
                "per_hour": (len(stamps) / active_hours) if active_hours else None,
                "median_ms": _median(times.get(user_id, [])),
            }
        )
    rows.sort(key=lambda r: (-r["last_window"], -r["total"], r["user"].username))
    return rows


def audit_events_for_project(*, project: Project, limit: int = 200):
    from annotate.models import AuditEvent

    return (
        AuditEvent.objects.filter(project=project)
        .select_related("actor")
        .order_by("-created_at", "-id")[:limit]
    )


def guideline_ever_acknowledged(*, project: Project, user: AbstractBaseUser) -> bool:
    """Has this user acknowledged any version of the project's guidelines (first visit or not)?"""
    return GuidelineAck.objects.filter(guideline__project=project, user=user).exists()


def active_labeler_count(*, project: Project) -> int:
    from annotate.models import Role

    return Membership.objects.filter(project=project, role=Role.LABELER, is_active=True).count()


def guideline_ack_user_ids(*, guideline: Guideline | None) -> set[int]:
    if guideline is None:
        return set()
    return set(GuidelineAck.objects.filter(guideline=guideline).values_list("user_id", flat=True))
