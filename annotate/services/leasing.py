"""Task leasing: claim the next task, submit, skip, undo, release, expire.

Locking contract
----------------
* ``Task.claims`` counts labelers holding a live lease or having submitted. It changes only here,
  always with ``UPDATE ... SET claims = claims +/- n`` inside the transaction that changes the lease,
  and the database refuses ``claims > target_labels`` (check constraint) or ``claims < 0``.
* Claiming locks the chosen task row with ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
  concurrent labelers never wait on each other and never take the same slot twice. On SQLite the
  settings open every transaction with ``BEGIN IMMEDIATE``, which serialises writers instead.
* Submit, skip and undo lock the assignment row first (``SELECT ... FOR UPDATE``), so a double
  submit waits for the first one and then replays its result.
* Expired leases are reclaimed by ``leases_expire`` in a transaction of its own before each claim
  (and by the periodic sweep), so a claim never holds one task lock while waiting for another.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from annotate.errors import (
    Conflict,
    Forbidden,
    GuidelineNotAcknowledged,
    InvalidInput,
    LeaseExpired,
    LeaseNotLive,
    NotFound,
)
from annotate.models import (
    Annotation,
    Assignment,
    AssignmentState,
    Choice,
    GuidelineAck,
    Project,
    Task,
    TaskCandidate,
    TaskKind,
)
from annotate.selectors import guideline_current
from core.access import grants, user_roles

# A labeler may hold the task on screen plus one prefetched task, per project.
MAX_LIVE_LEASES_PER_LABELER = 2
MAX_RATIONALE_CHARS = 10_000
MAX_REASON_CHARS = 500
MAX_TIME_SPENT_MS = 24 * 3600 * 1000

_rng = random.SystemRandom()


def _skip_locked_supported() -> bool:
    return connection.features.has_select_for_update_skip_locked


def _require_active_labeler(*, project: Project, labeler: AbstractBaseUser) -> None:
    """The service's own check (it is also called from the CLI and tasks), through core.access."""
    if not labeler.is_active:
        raise Forbidden("This account is deactivated.")
    if not grants(user_roles(labeler, project), "label"):
        raise Forbidden("You are not an active labeler in this project.")


def leases_expire(*, project_id: int | None = None, now: datetime | None = None, limit: int = 1000) -> int:
    """Turn live leases past their expiry into ``expired`` and give their slots back.

    Safe to run concurrently: rows another sweeper holds are skipped. Returns how many expired.
    """
    now = now or timezone.now()
    with transaction.atomic():
        qs = Assignment.objects.filter(state=AssignmentState.LIVE, expires_at__lte=now)
        if project_id is not None:
            qs = qs.filter(task__project_id=project_id)
        if _skip_locked_supported():
            qs = qs.select_for_update(skip_locked=True, of=("self",))
        rows = list(qs.order_by("expires_at").values_list("id", "task_id")[:limit])
        if not rows:
            return 0
        Assignment.objects.filter(id__in=[r[0] for r in rows]).update(
            state=AssignmentState.EXPIRED, finished_at=now
        )
        _release_claims(Counter(task_id for _, task_id in rows))
    return len(rows)


def _release_claims(per_task: Counter) -> None:
    # Ordered by id so two sweepers can never lock the same tasks in opposite orders.
    for task_id, n in sorted(per_task.items()):
        Task.objects.filter(pk=task_id).update(claims=F("claims") - n)


def _live_leases(*, project: Project, labeler: AbstractBaseUser, now: datetime):
    return Assignment.objects.filter(
        task__project=project, labeler=labeler, state=AssignmentState.LIVE, expires_at__gt=now
    ).order_by("leased_at", "id")


def task_claim_next(
    *,
    project: Project,
    labeler: AbstractBaseUser,
    exclude_assignment_ids: tuple[int, ...] | list[int] = (),
    now: datetime | None = None,
) -> Assignment | None:
    """Lease the next task this labeler should judge, or return ``None`` when none is left.

    A live lease the labeler already holds in the project (and not in ``exclude_assignment_ids``)
    is returned first, so reloading a page never grabs a second task. Otherwise a new task is chosen:
    one with a free slot (``claims < target_labels``), never one this labeler holds, submitted or
    skipped, fewest claims first and oldest first, so every task gets its k-th labeler before any
    gets its (k+1)-th. ``exclude_assignment_ids`` lets the page prefetch the following task while the
    current one is on screen (at most ``MAX_LIVE_LEASES_PER_LABELER`` live leases).
    """
    now = now or timezone.now()
    _require_active_labeler(project=project, labeler=labeler)
    leases_expire(project_id=project.pk, now=now)
    with transaction.atomic():
        live = list(_live_leases(project=project, labeler=labeler, now=now))
        for lease in live:
            if lease.pk not in exclude_assignment_ids:
                return lease
        if len(live) >= MAX_LIVE_LEASES_PER_LABELER:
            return None

        held_or_done = Assignment.objects.filter(
            task_id=OuterRef("pk"),
            labeler=labeler,
            state__in=[AssignmentState.LIVE, AssignmentState.SUBMITTED, AssignmentState.SKIPPED],
        )
        annotated = Annotation.objects.filter(task_id=OuterRef("pk"), labeler=labeler)
        qs = (
            Task.objects.filter(project=project, claims__lt=F("target_labels"))
            .filter(~Exists(held_or_done), ~Exists(annotated))
            .order_by("claims", "id")
        )
        if _skip_locked_supported():
            qs = qs.select_for_update(skip_locked=True, of=("self",))
        task = qs.only("id").first()
        if task is None:
            return None
        Task.objects.filter(pk=task.pk).update(claims=F("claims") + 1)
        shown = list(
            TaskCandidate.objects.filter(task_id=task.pk)
            .order_by("slot")
            .values_list("candidate_id", flat=True)
        )
        _rng.shuffle(shown)
        return Assignment.objects.create(
            task_id=task.pk,
            labeler=labeler,
            state=AssignmentState.LIVE,
            leased_at=now,
            expires_at=now + timedelta(seconds=project.lease_ttl_seconds),
            shown_order=shown,
        )


def _lock_own_assignment(*, assignment_id: int, labeler: AbstractBaseUser) -> Assignment:
    try:
        assignment = (
            Assignment.objects.select_for_update(of=("self",))
            .select_related("task", "task__project")
            .get(pk=assignment_id)
        )
    except Assignment.DoesNotExist:
        raise NotFound("No such assignment.") from None
    if assignment.labeler_id != labeler.pk:
        raise Forbidden("This task is leased to someone else.")
    return assignment


def _check_live(assignment: Assignment, now: datetime) -> None:
    if assignment.state != AssignmentState.LIVE:
        raise LeaseNotLive(f"This task was already {assignment.get_state_display().lower()}.")
    if assignment.expires_at <= now:
        raise LeaseExpired("Your lease on this task expired; it went back to the pool. Nothing was saved.")


def _clean_reason(reason: str, field: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Please give a reason.", field=field)
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInput(f"Keep the reason under {MAX_REASON_CHARS} characters.", field=field)
    return reason


_DISPLAY_CHOICES = {"left": 0, "right": 1}


def _validate_pairwise(
    *,
    project: Project,
    assignment: Assignment,
    slots: list[int],
    choice: str | None,
    strength: int | None,
    flagged: bool,
) -> str | None:
    if choice in (None, ""):
        if not flagged:
            raise InvalidInput("Choose which response is better.", field="choice")
        if strength is not None:
            raise InvalidInput("Strength needs a preferred response.", field="strength")
        return None
    if choice in _DISPLAY_CHOICES:
        shown_candidate = assignment.shown_order[_DISPLAY_CHOICES[choice]]
        canonical = Choice.A if slots.index(shown_candidate) == 0 else Choice.B
    elif choice == Choice.TIE:
        if not project.allow_tie:
            raise InvalidInput("This project does not allow ties.", field="choice")
        canonical = Choice.TIE
    elif choice == Choice.BOTH_BAD:
        if not project.allow_both_bad:
            raise InvalidInput('This project does not allow "both bad".', field="choice")
        canonical = Choice.BOTH_BAD
    else:
        raise InvalidInput("choice must be one of left, right, tie, both_bad.", field="choice")
    if strength is not None:
        if not project.strength_scale:
            raise InvalidInput("This project does not ask for strength of preference.", field="strength")
        if canonical not in (Choice.A, Choice.B):
            raise InvalidInput("Strength applies only when one response is preferred.", field="strength")
        if not isinstance(strength, int) or isinstance(strength, bool) or not 1 <= strength <= 3:
            raise InvalidInput(
                "strength must be 1 (slightly), 2 (clearly) or 3 (much better).", field="strength"
            )
    return canonical


def _validate_ranking(
    *, project: Project, slots: list[int], ranking: object, flagged: bool
) -> list[list[int]] | None:
    if ranking in (None, [], ""):
        if not flagged:
            raise InvalidInput("Order the responses before submitting.", field="ranking")
        return None
    if not isinstance(ranking, list):
        raise InvalidInput(
            "ranking must be a list of candidate ids (or of groups of tied ids), best first.", field="ranking"
        )
    groups: list[list[int]] = []
    for item in ranking:
        group = item if isinstance(item, list) else [item]
        if not group or not all(isinstance(c, int) and not isinstance(c, bool) for c in group):
            raise InvalidInput("ranking entries must be candidate ids.", field="ranking")
        groups.append(list(group))
    flat = [c for g in groups for c in g]
    if sorted(flat) != sorted(slots):
        raise InvalidInput("ranking must place every response of this task exactly once.", field="ranking")
    if any(len(g) > 1 for g in groups) and not project.allow_rank_ties:
        raise InvalidInput("This project does not allow ties in rankings.", field="ranking")
    return groups


def _validate_ratings(
    *, project: Project, slots: list[int], ratings: object, flagged: bool
) -> dict[str, dict[str, int]]:
    ratings = ratings or {}
    if not isinstance(ratings, dict):
        raise InvalidInput("ratings must map a dimension to {candidate_id: score}.", field="ratings")
    dims = {d.key: d for d in project.dimensions.all()}
    clean: dict[str, dict[str, int]] = {}
    for key, per_candidate in ratings.items():
        if key not in dims:
            raise InvalidInput(f"Unknown rating dimension {key!r}.", field="ratings")
        if not isinstance(per_candidate, dict):
            raise InvalidInput(f"ratings[{key!r}] must map candidate ids to scores.", field="ratings")
        row: dict[str, int] = {}
        for cand, score in per_candidate.items():
            try:
                cand_id = int(cand)
            except (TypeError, ValueError):
                raise InvalidInput(
                    f"ratings[{key!r}] has a bad candidate id {cand!r}.", field="ratings"
                ) from None
            if cand_id not in slots:
                raise InvalidInput(
                    f"ratings[{key!r}] names a response that is not in this task.", field="ratings"
                )
            if (
                not isinstance(score, int)
                or isinstance(score, bool)
                or not 1 <= score <= project.rating_scale_max
            ):
                raise InvalidInput(
                    f"ratings[{key!r}] scores must be whole numbers 1..{project.rating_scale_max}.",
                    field="ratings",
                )
            row[str(cand_id)] = score
        if row:
            clean[key] = row
    if not flagged:
        for key, dim in dims.items():
            if dim.required and len(clean.get(key, {})) != len(slots):
                raise InvalidInput(f"Rate every response on {dim.label}.", field="ratings")
    return clean


def _pre_annotated(task: Task) -> bool:
    from annotate.judges.selectors import pre_annotation_for

    return task.project.kind == TaskKind.PAIRWISE and pre_annotation_for(task=task) is not None


def annotation_submit(
    *,
    assignment_id: int,
    labeler: AbstractBaseUser,
    choice: str | None = None,
    ranking: object = None,
    strength: int | None = None,
    ratings: object = None,
    rationale: str = "",
    flagged: bool = False,
    flag_reason: str = "",
    time_spent_ms: int | None = None,
    now: datetime | None = None,
    pre_annotation_shown: bool = False,
) -> tuple[Annotation, bool]:
    """Record the labeler's judgment on a live lease. Returns ``(annotation, created)``.

    Pairwise ``choice`` is in the labeler's terms: ``left``/``right`` (mapped back to canonical A/B
    through the lease's ``shown_order``), ``tie`` or ``both_bad``. Ranking takes candidate ids,
    best first, groups for ties. Idempotent: a replay on an already-submitted lease returns the first
    annotation and writes nothing. Refuses, writing nothing: someone else's lease (403), an expired,
    skipped or released lease (409), guidelines not yet acknowledged (409), invalid values (400).
    ``pre_annotation_shown``: the labeling page offers AI judges' verdicts preselected; the
    annotation records ``pre_annotated`` when the project pre-annotates and this task has one.
    """
    now = now or timezone.now()
    with transaction.atomic():
        assignment = _lock_own_assignment(assignment_id=assignment_id, labeler=labeler)
        if assignment.state == AssignmentState.SUBMITTED:
            return Annotation.objects.get(assignment=assignment), False
        _check_live(assignment, now)
        task = assignment.task
        project = task.project
        _require_active_labeler(project=project, labeler=labeler)

        guideline = guideline_current(project=project, fields=("id", "version"))
        if (
            guideline is not None
            and not GuidelineAck.objects.filter(guideline=guideline, user=labeler).exists()
        ):
            raise GuidelineNotAcknowledged(
                f"Guidelines v{guideline.version} were published; read and acknowledge them before submitting."
            )

        flagged = bool(flagged)
        flag_reason = _clean_reason(flag_reason, "flag_reason") if flagged else ""
        slots = list(
            TaskCandidate.objects.filter(task=task).order_by("slot").values_list("candidate_id", flat=True)
        )
        canonical_choice = None
        clean_ranking = None
        if project.kind == TaskKind.PAIRWISE:
            if ranking not in (None, []):
                raise InvalidInput("This is a pairwise task: send choice, not ranking.", field="ranking")
            canonical_choice = _validate_pairwise(
                project=project,
                assignment=assignment,
                slots=slots,
                choice=choice,
                strength=strength,
                flagged=flagged,
            )
            if canonical_choice is None:
                strength = None
        else:
            if choice not in (None, ""):
                raise InvalidInput("This is a ranking task: send ranking, not choice.", field="choice")
            if strength is not None:
                raise InvalidInput("Ranking tasks have no strength of preference.", field="strength")
            clean_ranking = _validate_ranking(project=project, slots=slots, ranking=ranking, flagged=flagged)
        clean_ratings = _validate_ratings(project=project, slots=slots, ratings=ratings, flagged=flagged)
        rationale = (rationale or "").strip()
        if len(rationale) > MAX_RATIONALE_CHARS:
            raise InvalidInput(
                f"Keep the rationale under {MAX_RATIONALE_CHARS} characters.", field="rationale"
            )
        if time_spent_ms is not None:
            if not isinstance(time_spent_ms, int) or isinstance(time_spent_ms, bool) or time_spent_ms < 0:
                raise InvalidInput(
                    "time_spent_ms must be a non-negative whole number.", field="time_spent_ms"
                )
            time_spent_ms = min(time_spent_ms, MAX_TIME_SPENT_MS)
        else:
            time_spent_ms = int((now - assignment.leased_at).total_seconds() * 1000)

        try:
            with transaction.atomic():
                annotation = Annotation.objects.create(
                    task=task,
                    labeler=labeler,
                    assignment=assignment,
                    choice=canonical_choice,
                    ranking=clean_ranking,
                    strength=strength if canonical_choice in (Choice.A, Choice.B) else None,
                    ratings=clean_ratings,
                    rationale=rationale,
                    flagged=flagged,
                    flag_reason=flag_reason,
                    shown_order=assignment.shown_order,
                    guideline=guideline,
                    time_spent_ms=time_spent_ms,
                    pre_annotated=pre_annotation_shown and _pre_annotated(task),
                )
        except IntegrityError:
            raise Conflict("You already judged this task.") from None
        assignment.state = AssignmentState.SUBMITTED
        assignment.finished_at = now
        assignment.save(update_fields=["state", "finished_at"])
    return annotation, True


def annotation_undo(
    *, assignment_id: int, labeler: AbstractBaseUser, now: datetime | None = None
) -> Assignment:
    """Take back a submission while its lease is still live; the task is open again for this labeler."""
    now = now or timezone.now()
    with transaction.atomic():
        assignment = _lock_own_assignment(assignment_id=assignment_id, labeler=labeler)
        if assignment.state != AssignmentState.SUBMITTED:
            raise LeaseNotLive("Only a submitted task can be undone.")
        if assignment.expires_at <= now:
            raise LeaseExpired("Too late to undo: the lease on that task has ended.")
        Annotation.objects.filter(assignment=assignment).delete()
        assignment.state = AssignmentState.LIVE
        assignment.finished_at = None
        assignment.save(update_fields=["state", "finished_at"])
    return assignment


def assignment_skip(
    *, assignment_id: int, labeler: AbstractBaseUser, reason: str, now: datetime | None = None
) -> Assignment:
    """Give a task back with a reason; this labeler will not be offered it again."""
    now = now or timezone.now()
    with transaction.atomic():
        assignment = _lock_own_assignment(assignment_id=assignment_id, labeler=labeler)
        if assignment.state == AssignmentState.SKIPPED:
            return assignment
        _check_live(assignment, now)
        assignment.skip_reason = _clean_reason(reason, "reason")
        assignment.state = AssignmentState.SKIPPED
        assignment.finished_at = now
        assignment.save(update_fields=["state", "finished_at", "skip_reason"])
        _release_claims(Counter({assignment.task_id: 1}))
    return assignment


def assignments_release(*, project: Project, labeler: AbstractBaseUser, now: datetime | None = None) -> int:
    """Release every live lease a labeler holds in a project (used on deactivation)."""
    now = now or timezone.now()
    with transaction.atomic():
        qs = Assignment.objects.filter(task__project=project, labeler=labeler, state=AssignmentState.LIVE)
        rows = list(qs.select_for_update(of=("self",)).values_list("id", "task_id"))
        if not rows:
            return 0
        Assignment.objects.filter(id__in=[r[0] for r in rows]).update(
            state=AssignmentState.RELEASED, finished_at=now
        )
        _release_claims(Counter(task_id for _, task_id in rows))
    return len(rows)


def assignment_renew(
    *, assignment_id: int, labeler: AbstractBaseUser, now: datetime | None = None
) -> Assignment:
    """Restart a live lease's clock (a full TTL from now): used when a prefetched task comes on
    screen, so the time it waited behind the current task does not count against the labeler."""
    now = now or timezone.now()
    with transaction.atomic():
        assignment = _lock_own_assignment(assignment_id=assignment_id, labeler=labeler)
        _check_live(assignment, now)
        assignment.expires_at = now + timedelta(seconds=assignment.task.project.lease_ttl_seconds)
        assignment.save(update_fields=["expires_at"])
    return assignment
