"""Reads that are more than a ``get``. No writes here."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Count, F, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotate.errors import InvalidInput
from annotate.models import (
    Annotation,
    AnnotationSource,
    Assignment,
    AssignmentState,
    AuditEvent,
    Guideline,
    GuidelineAck,
    Membership,
    Project,
    Prompt,
    ReviewVerdict,
    Task,
    TaskCandidate,
)
from annotate.validation import id_from_text, unstorable_error


def counted(annotations: QuerySet[Annotation]) -> QuerySet[Annotation]:
    """Of ``annotations``, the judgments statistics and votes count: people's, less those rejected
    in review. AI judges' labels are compared with people's in a block of their own, never counted
    as people's."""
    return annotations.exclude(source=AnnotationSource.JUDGE).exclude(review__verdict=ReviewVerdict.REJECTED)


def counted_judgments(*, project: Project) -> QuerySet[Annotation]:
    """The judgments a project's statistics count (the agreement report, both leaderboards, task
    ordering): ``counted`` of its annotations."""
    return counted(Annotation.objects.filter(task__project=project))


def project_get(*, slug: str) -> Project | None:
    """The project of this slug, or None; also for text no slug can be and the database cannot even
    compare (a NUL; a surrogate escape, which a slug typed in a terminal that is not UTF-8 is)."""
    if unstorable_error(slug) is not None:
        return None
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


def task_slot_candidate_ids(**slot_filter) -> dict[int, list[int]]:
    """Each task's candidate ids in slot order (A, B, ...), for the ``TaskCandidate`` rows
    ``slot_filter`` picks (``task__project=project``, ``task_id__in=task_ids``). A task without
    candidates is not in it."""
    slots: dict[int, list[int]] = {}
    for task_id, cid in (
        TaskCandidate.objects.filter(**slot_filter)
        .order_by("task_id", "slot")
        .values_list("task_id", "candidate_id")
    ):
        slots.setdefault(task_id, []).append(cid)
    return slots


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
        # leases past their expiry that the sweep has not reclaimed yet are on nobody's screen
        "live_leases": live_leases().filter(task__project=project).count(),
        "annotations": Annotation.objects.filter(task__project=project).count(),
    }


def memberships_for_project(*, project: Project) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(project=project).select_related("user").order_by("user__username", "role")
    )


# --- Pages: the labeler's and the manager's (appended for the web UI) ---------------------------


def leases_released_by_undo(*, assignment: Assignment) -> list[int]:
    """The leases that an undo of ``assignment`` gave back to stay within the live-lease cap (their
    ``assignment.release`` audit events since it was leased) and that are still released, newest
    first: what a retried undo names again (``leasing.annotation_undo``)."""
    events = AuditEvent.objects.filter(
        action="assignment.release",
        project_id=assignment.task.project_id,
        created_at__gte=assignment.leased_at,
        details__reason="undo",
        details__undone_assignment_id=assignment.pk,
    ).values_list("target_id", flat=True)
    ids = {int(pk) for pk in events if str(pk).isdigit()}
    released = Assignment.objects.filter(pk__in=ids, state=AssignmentState.RELEASED)
    return list(released.order_by("-leased_at", "-pk").values_list("pk", flat=True))


def live_leases(now=None) -> QuerySet[Assignment]:
    """Leases a labeler holds now: live and not past their expiry."""
    return Assignment.objects.filter(state=AssignmentState.LIVE, expires_at__gt=now or timezone.now())


def expired_leases(now=None) -> QuerySet[Assignment]:
    """Leases past their expiry that the sweep has not reclaimed yet: still ``live`` rows, no claim."""
    return Assignment.objects.filter(state=AssignmentState.LIVE, expires_at__lte=now or timezone.now())


def labeler_live_lease_count(*, project: Project, user: AbstractBaseUser) -> int:
    return live_leases().filter(task__project=project, labeler=user).count()


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
    * ``per_hour``: their pace while working: annotations in the window divided by the active time
      the labeling page measured on them (``time_spent_ms``, paused while the tab is hidden); None
      when no annotation in the window has a measured time (e.g. all came through the API);
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
    in_window: dict[int, int] = {}
    timed: dict[int, list[int]] = {}  # labeler -> [annotations with a measured time, their total ms]
    for labeler_id, ms in human.filter(created_at__gt=window_start, created_at__lte=now).values_list(
        "labeler_id", "time_spent_ms"
    ):
        in_window[labeler_id] = in_window.get(labeler_id, 0) + 1
        if ms:
            acc = timed.setdefault(labeler_id, [0, 0])
            acc[0] += 1
            acc[1] += ms
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
        n_timed, active_ms = timed.get(user_id, (0, 0))
        active_hours = active_ms / 3_600_000
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
                "last_window": in_window.get(user_id, 0),
                "active_hours": active_hours,
                "per_hour": (n_timed / active_hours) if active_hours else None,
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


def prompt_external_ids_existing(*, project: Project, external_ids: list[str]) -> set[str]:
    """Which of these (non-empty) external ids the project's prompts already use. PostgreSQL: one
    array parameter (a 2,000-id batch of an import is not compiled as 2,000 placeholders) matching
    the partial unique index on (project, external_id)."""
    if not external_ids:
        return set()
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute(
                "SELECT external_id FROM annotate_prompt WHERE project_id = %s AND NOT external_id = ''"
                " AND external_id = ANY(%s)",
                [project.pk, external_ids],
            )
            return {row[0] for row in cur.fetchall()}
    return set(
        Prompt.objects.filter(project=project, external_id__in=external_ids).values_list(
            "external_id", flat=True
        )
    )


def tasks_for_listing(
    *, project: Project, is_gold: bool | None = None, open: bool | None = None
) -> QuerySet[Task]:
    """A project's tasks in creation order with their prompt, slots, annotation count and
    ``live_claims``: claims less the leases past their expiry that the sweep has not reclaimed yet
    (such a lease is no claim). ``open``: only tasks with (True) or without (False) a free slot."""
    expired = expired_leases().filter(task=OuterRef("pk")).values("task").annotate(n=Count("pk")).values("n")
    qs = Task.objects.filter(project=project).annotate(
        live_claims=F("claims") - Coalesce(Subquery(expired), 0)
    )
    if is_gold is not None:
        qs = qs.filter(is_gold=is_gold)
    if open is True:
        qs = qs.filter(live_claims__lt=F("target_labels"))
    elif open is False:
        qs = qs.filter(live_claims__gte=F("target_labels"))
    return (
        qs.select_related("prompt")
        .prefetch_related(Prefetch("slots", queryset=TaskCandidate.objects.order_by("slot")))
        .annotate(n_annotations=Count("annotations"))
        .order_by("id")
    )


def project_people_ids(*, project: Project, names: str | list | tuple, field: str = "labelers") -> list[int]:
    """The user ids of the people named, sorted: the one rule for naming labelers everywhere (the
    export page, API and CLI, the annotations filter). ``names`` is a list, or text separated by
    commas; an item is a username, or a user id where no username is that text; a number (JSON's,
    not text) is a user id, as the export API's options took them before names. People are the
    project's members and whoever annotated in it; anybody else (unknown, or of another project, who
    is not revealed) is an ``InvalidInput`` naming every such item, and so is a list with an empty or
    null item (in text, empty items between commas are skipped)."""
    if isinstance(names, str):
        names = names.split(",")
    elif not isinstance(names, list | tuple) or any(isinstance(n, bool | float) for n in names):
        raise InvalidInput(f"{field} must be usernames or user ids.", field=field)
    elif any(n is None or not str(n).strip() for n in names):
        # a list names each person: an empty or null item names nobody (it would filter nothing)
        raise InvalidInput(
            f"{field} has an empty or null item: name each person by username or id.", field=field
        )
    numbers = {str(n) for n in names if isinstance(n, int)}  # ids, never usernames
    wanted = sorted({str(n).strip() for n in names if n is not None and str(n).strip()})
    if not wanted:
        return []
    for name in wanted:
        problem = unstorable_error(name, name=f"{field}: a name") or (
            f"{field}: {name[:20]!r}... is longer than a username (150 characters)."
            if len(name) > 150
            else None
        )
        if problem:
            raise InvalidInput(problem, field=field)
    people = get_user_model().objects.filter(
        Q(pk__in=Membership.objects.filter(project=project).values("user_id"))
        | Q(pk__in=Annotation.objects.filter(task__project=project).values("labeler_id"))
    )
    found = dict(people.filter(username__in=set(wanted) - numbers).values_list("username", "pk"))
    by_id: dict[int, list[str]] = {}  # an id may be spelled more than one way ("5", "05")
    for n in wanted:
        if n not in found and (pk := id_from_text(n)) is not None:
            by_id.setdefault(pk, []).append(n)
    for pk in people.filter(pk__in=list(by_id)).values_list("pk", flat=True):
        found.update(dict.fromkeys(by_id[pk], pk))
    missing = [n for n in wanted if n not in found]
    if missing:
        raise InvalidInput(f"Not labelers of this project: {', '.join(missing)}.", field=field)
    return sorted(set(found.values()))


def annotations_for_listing(
    *, project: Project, task: int | None = None, labeler: str | None = None, since=None
) -> QuerySet[Annotation]:
    """A project's annotations, oldest first; ``labeler`` names one of its people
    (``project_people_ids``: a username, or a user id)."""
    qs = Annotation.objects.filter(task__project=project)
    if task is not None:
        qs = qs.filter(task_id=task)
    if labeler is not None:
        qs = qs.filter(labeler_id__in=project_people_ids(project=project, names=[labeler], field="labeler"))
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    return qs.select_related("guideline", "labeler").order_by("created_at", "id")
