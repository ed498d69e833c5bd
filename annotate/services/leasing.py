"""Task leasing: claim the next task, submit, skip, undo, release, expire.

Locking contract
----------------
* ``Task.claims`` counts labelers holding a live lease or having submitted. It changes only here,
  always with ``UPDATE ... SET claims = claims +/- n`` inside the transaction that changes the lease,
  and the database refuses ``claims > target_labels`` (check constraint) or ``claims < 0``. A lease
  ending without a label also gives back a slot the task kept only for it (``Task.kept_slots``,
  ``_release_claims``), in the same UPDATE.
* Claiming locks the chosen task row with ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
  concurrent labelers never wait on each other and never take the same slot twice. On SQLite the
  settings open every transaction with ``BEGIN IMMEDIATE``, which serialises writers instead.
* Submit, skip and undo lock the assignment row first (``SELECT ... FOR UPDATE``), so a double
  submit waits for the first one and then replays its result.
* Expired leases are reclaimed by ``leases_expire`` in a transaction of its own (and by the
  periodic sweep), so a claim never holds one task lock while waiting for another. On PostgreSQL
  the claim statement itself reports whether any lease of the project is past its expiry, and the
  sweep runs only then (before claiming again when nothing was free); on other databases it runs
  before each claim.

The hot path on PostgreSQL (issue 16): the claim is ONE statement (``_CLAIM_SQL``: a CTE that
returns the live lease the labeler already holds, or locks a free task ``FOR UPDATE SKIP LOCKED``,
bumps its ``claims``, inserts the lease, and reads back the prompt, the responses in display order
and the guideline to acknowledge), so a next-task request is the access check plus this statement.
Submit is one locking read that brings the slots, dimensions and guideline along, the insert and
the state update, in one transaction without a savepoint. Other databases (SQLite) take the ORM
path with the same invariants.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, connections, models, transaction
from django.db.models import Exists, F, OuterRef, Subquery
from django.db.models.functions import Greatest, JSONObject
from django.utils import timezone

from annotate.errors import (
    Conflict,
    Forbidden,
    GuidelineNotAcknowledged,
    InvalidInput,
    JudgmentReviewed,
    LeaseExpired,
    LeaseNotLive,
    NotFound,
)
from annotate.models import (
    Annotation,
    AnnotationReview,
    Assignment,
    AssignmentState,
    Candidate,
    Choice,
    Dimension,
    Guideline,
    GuidelineAck,
    Project,
    Task,
    TaskCandidate,
    TaskKind,
)
from annotate.selectors import (
    assignment_candidates_in_display_order,
    assignment_with_task,
    expired_leases,
    guideline_pending_ack,
    leases_released_by_undo,
    live_leases,
)
from annotate.services.extra_labels import extra_label_withdraw
from annotate.strength import strength_value
from core.access import grants, user_roles
from core.audit import audit_record
from core.db import JSONList

# A labeler may hold the task on screen plus one prefetched task, per project.
MAX_LIVE_LEASES_PER_LABELER = 2
# Leases a claim may be told to pass over (the ones on screen or just let go): a labeler holds at
# most MAX_LIVE_LEASES_PER_LABELER, so a longer list means nothing and only costs the claim.
MAX_EXCLUDED_LEASES = 8
MAX_RATIONALE_CHARS = 10_000
MAX_REASON_CHARS = 500
MAX_TIME_SPENT_MS = 24 * 3600 * 1000

_rng = random.SystemRandom()


class LeaseLimitReached(Conflict):
    """The labeler holds ``MAX_LIVE_LEASES_PER_LABELER`` live leases and excluded them all: no new
    task until one of them is submitted, skipped or expires (``details`` lists them)."""

    code = "lease_limit"


# The order new tasks are handed out in: fewest claims first, then oldest. The one place to change
# it (a "-field" sorts descending): both the PostgreSQL claim statement and the ORM claim use it.
CLAIM_ORDER: tuple[str, ...] = ("claims", "-priority", "id")

# Display order is drawn in Python (``_rng.shuffle`` of a permutation) and applied in SQL: slot i
# sorts by key i.
_SHUFFLE_KEYS = 64


@dataclass(frozen=True)
class LeaseView:
    """A lease as the labeler's client shows it, built from what the claim returned: the
    responses' texts in display order (``assignment.shown_order``), the prompt's messages, and
    the guideline version still to acknowledge (None when none)."""

    assignment: Assignment
    kind: str
    messages: list
    candidate_texts: list[str]
    guideline_pending: int | None


def _skip_locked_supported() -> bool:
    return connection.features.has_select_for_update_skip_locked


def _require_active_labeler(
    *, project: Project, labeler: AbstractBaseUser, roles: Collection[str] | None = None
) -> None:
    """The service's own check (it is also called from the CLI and tasks), through core.access.
    ``roles``: the labeler's roles in ``project`` as the caller's access check already resolved
    them (``ProjectAccess.roles``), so the membership is not read twice."""
    if not labeler.is_active:
        raise Forbidden("This account is deactivated.")
    if not grants(set(user_roles(labeler, project) if roles is None else roles), "label"):
        raise Forbidden("You are not an active labeler in this project.")


def leases_expire(*, project_id: int | None = None, now: datetime | None = None, limit: int = 1000) -> int:
    """Turn live leases past their expiry into ``expired`` and give their slots back.

    Safe to run concurrently: rows another sweeper holds are skipped. Returns how many expired.
    """
    now = now or timezone.now()
    with transaction.atomic():
        qs = expired_leases(now)
        if project_id is not None:
            qs = qs.filter(task__project_id=project_id)
        if _skip_locked_supported():
            qs = qs.select_for_update(skip_locked=True, of=("self",))
        rows = list(qs.order_by("expires_at").values_list("id", "task_id")[:limit])
        return _leases_end(rows, state=AssignmentState.EXPIRED, now=now)


def _leases_end(rows: list[tuple[int, int]], *, state: str, now: datetime) -> int:
    """End the live leases ``rows`` ((assignment id, task id) pairs the caller has locked) in
    ``state`` and give their slots back. Returns how many ended."""
    if not rows:
        return 0
    Assignment.objects.filter(id__in=[r[0] for r in rows]).update(state=state, finished_at=now)
    _release_claims(Counter(task_id for _, task_id in rows))
    return len(rows)


def _release_claims(per_task: Counter) -> None:
    """Give back ``n`` claims of each task: leases that ended without a label (expired, skipped,
    released). A slot the task kept only for such a lease when its overlap was lowered
    (``Task.kept_slots``) goes with it: the target drops to what the project asks of the task
    (``target_labels - kept_slots``), never below the claims left. One UPDATE per task, computed
    from the row it updates, so a settings change committing meanwhile is counted (PostgreSQL
    evaluates the SET again on the row's new version once its lock is granted)."""
    # Ordered by id so two sweepers can never lock the same tasks in opposite orders.
    for task_id, n in sorted(per_task.items()):
        left = F("claims") - n
        Task.objects.filter(pk=task_id).update(claims=left, **task_target_kept(ASKED, left))


def tasks_lock(tasks: models.QuerySet) -> None:
    """Lock the rows of ``tasks`` in id order (``FOR NO KEY UPDATE``, what an UPDATE of them takes),
    before a transaction writes several of them: every writer of several task rows takes them in
    that order (``_release_claims`` updates them one by one by id), so none waits on another
    holding a task it needs. An UPDATE of many rows alone takes them in the order its plan meets
    them (the table's, on a scan), and a sweep holding one task and waiting on another that UPDATE
    had already taken deadlocked with it. The rows are counted in the database, not fetched: a
    settings change locks every task of a project, millions on a large one."""
    locking = tasks.order_by("pk").select_for_update(no_key=True).values("pk")
    sql, params = locking.query.get_compiler(using=locking.db).as_sql()
    with connections[locking.db].cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM ({sql}) AS locked", params)  # the SQL is Django's own


#: What a task asks for, without the slots it kept for labelers (``Task.kept_slots``).
ASKED = F("target_labels") - F("kept_slots")


def task_target_kept(asked, claims) -> dict:
    """The one rule for a task's target and kept slots (``UPDATE`` values, from expressions of the
    row) once it asks for ``asked`` labels and holds ``claims``: the target is whichever is more
    (the database refuses ``claims > target_labels``), and the claims beyond what it asks for are
    its kept slots, each given back when its lease ends without a label.

    Why this holds: a task's target is what it asks for, or its claims when it holds more (only
    an overlap decrease can make it ask for less than it holds). Claims fall only when a lease ends
    without a label, and then this rule runs with the claims left; a submission or an undo leaves
    claims and target alone (an undo's withdrawal of an automatic raise lowers what the task asks
    for and runs this rule); a claim needs a free slot, which a task with kept slots has not. So a
    kept slot is one held by a live lease or a label, whichever of the task's leases ends first
    gives it back (a flag on one chosen lease would lose it when that lease is submitted and
    another one lapses), and a label keeps it. A raise (a manager's send-back, the automatic extra
    label) asks for more than the target as it stands and sets the kept slots to 0: no lease
    ending later takes it back. An overlap change moves what the task asks for and runs this rule,
    so lowering and raising it again while a lease lives gives back the old target exactly."""
    return {"target_labels": Greatest(asked, claims), "kept_slots": Greatest(claims - asked, 0)}


def _live_leases(*, project: Project, labeler: AbstractBaseUser, now: datetime):
    return live_leases(now).filter(task__project=project, labeler=labeler).order_by("leased_at", "id")


def task_claim_next(
    *,
    project: Project,
    labeler: AbstractBaseUser,
    exclude_assignment_ids: tuple[int, ...] | list[int] = (),
    roles: Collection[str] | None = None,
    now: datetime | None = None,
) -> Assignment | None:
    """Lease the next task this labeler should judge, or return ``None`` when none is left.

    A live lease the labeler already holds in the project (and not in ``exclude_assignment_ids``)
    is returned first, so reloading a page never grabs a second task. Otherwise a new task is chosen:
    one with a free slot (``claims < target_labels``), never one this labeler holds, submitted or
    skipped, in ``CLAIM_ORDER`` (fewest claims first, oldest first), so every task gets its k-th
    labeler before any gets its (k+1)-th. ``exclude_assignment_ids`` lets the page prefetch the
    following task while the current one is on screen (at most ``MAX_LIVE_LEASES_PER_LABELER``
    live leases). ``roles``: see ``_require_active_labeler``.
    """
    lease = task_claim_lease(
        project=project,
        labeler=labeler,
        exclude_assignment_ids=exclude_assignment_ids,
        roles=roles,
        now=now,
    )
    return lease.assignment if lease else None


def task_claim_lease(
    *,
    project: Project,
    labeler: AbstractBaseUser,
    exclude_assignment_ids: tuple[int, ...] | list[int] = (),
    roles: Collection[str] | None = None,
    now: datetime | None = None,
    refuse_at_limit: bool = False,
) -> LeaseView | None:
    """``task_claim_next`` with what the labeler's client shows (``LeaseView``).

    On PostgreSQL: one statement (plus the expiry sweep only when some lease of the project is past
    its expiry). Elsewhere: the ORM claim, then the lease is read back with its task.

    ``refuse_at_limit``: when nothing was leased because the labeler already holds the most live
    leases allowed (all of them excluded), raise ``LeaseLimitReached`` naming them instead of
    returning ``None``, so that ``None`` means only "nothing is left for you" (the REST API; the
    labeling page asks ``labeler_live_lease_count`` itself)."""
    now = now or timezone.now()
    lease = _claim_lease(
        project=project, labeler=labeler, exclude_assignment_ids=exclude_assignment_ids, roles=roles, now=now
    )
    if lease is None and refuse_at_limit:
        held = list(_live_leases(project=project, labeler=labeler, now=now).values_list("id", flat=True))
        if len(held) >= MAX_LIVE_LEASES_PER_LABELER:
            names = ", ".join(str(i) for i in held)
            raise LeaseLimitReached(
                f"You already hold {len(held)} open tasks (assignments {names}), the most one labeler "
                f"may hold at once ({MAX_LIVE_LEASES_PER_LABELER}). Submit or skip one of them (or let "
                "its lease expire) before claiming another.",
                details={"assignment_ids": held, "max_live_leases": MAX_LIVE_LEASES_PER_LABELER},
            )
    return lease


def _claim_lease(
    *,
    project: Project,
    labeler: AbstractBaseUser,
    exclude_assignment_ids: tuple[int, ...] | list[int],
    roles: Collection[str] | None,
    now: datetime,
) -> LeaseView | None:
    _require_active_labeler(project=project, labeler=labeler, roles=roles)
    if len(exclude_assignment_ids) > MAX_EXCLUDED_LEASES:
        raise InvalidInput(
            f"exclude_assignment_ids holds at most {MAX_EXCLUDED_LEASES} ids.", field="exclude_assignment_ids"
        )
    exclude = [int(x) for x in exclude_assignment_ids]
    if any(not -(2**63) <= x < 2**63 for x in exclude):  # the claim statement takes a bigint[]
        raise InvalidInput(
            "exclude_assignment_ids holds assignment ids (64-bit integers).", field="exclude_assignment_ids"
        )
    if connection.vendor == "postgresql":
        args = {"project": project, "labeler": labeler, "exclude": exclude, "now": now}
        try:
            lease, expired_waiting, busy = _claim_sql(**args, settled=True)
            if expired_waiting:
                leases_expire(project_id=project.pk, now=now)
            if lease is None and not busy:
                # nothing free in that snapshot, or every free task moved under it: look again
                lease, _, _ = _claim_sql(**args, settled=False)
        except IntegrityError:
            # two next-task requests of the same labeler racing for one task (one live lease per
            # task and labeler): the statement wrote nothing
            raise Conflict("Another request of yours claimed a task at the same moment; try again.") from None
        return lease
    leases_expire(project_id=project.pk, now=now)
    assignment = _claim_orm(project=project, labeler=labeler, exclude=exclude, now=now)
    if assignment is None:
        return None
    full = assignment_with_task(assignment_id=assignment.pk)
    pending = guideline_pending_ack(project=project, user=labeler)
    return LeaseView(
        assignment=assignment,
        kind=project.kind,
        messages=full.task.prompt.messages,
        candidate_texts=[c.text for c in assignment_candidates_in_display_order(assignment=full)],
        guideline_pending=pending.version if pending else None,
    )


def _claim_orm(
    *, project: Project, labeler: AbstractBaseUser, exclude: list[int], now: datetime
) -> Assignment | None:
    with transaction.atomic():
        live = list(_live_leases(project=project, labeler=labeler, now=now))
        for lease in live:
            if lease.pk not in exclude:
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
            .order_by(*CLAIM_ORDER)
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


def _claim_order_sql(alias: str) -> str:
    qn = connection.ops.quote_name
    parts = []
    for name in CLAIM_ORDER:
        column = Task._meta.get_field(name.lstrip("-")).column
        parts.append(f"{alias}.{qn(column)} {'DESC' if name.startswith('-') else 'ASC'}")
    return ", ".join(parts)


# One statement, atomic on its own (no BEGIN/COMMIT round trips): the labeler's live leases in the
# project; the first one not excluded (``held``) is returned as is; otherwise, below the live-lease
# limit, a free task is locked (SKIP LOCKED: concurrent labelers never wait on each other), its
# claims bumped (the check constraint refuses claims > target_labels) and the lease inserted with
# its candidates shuffled by the keys drawn in Python. The final SELECT always returns one row:
# the lease (NULLs when none) with the prompt, the texts in display order, the labeler's live
# leases, whether any lease of the project is past its expiry, and the guideline version this
# labeler has yet to acknowledge.
#
# ``settled``: a row another claim bumped and committed after this statement's snapshot is not
# skipped by SKIP LOCKED; PostgreSQL locks it and rechecks the WHERE clause on its new version, but
# not the ORDER BY, so without care a task could get its (k+1)-th labeler while others still wait
# for their k-th. The recheck compares the row's new ``claims`` with the snapshot's (the subquery
# reads the statement's snapshot), so a task whose claims moved is passed over like a locked one.
# When that leaves nothing (the last free slots were all moving), the caller claims again with
# ``settled`` off, taking whatever is free.
_CLAIM_SQL = """
WITH live AS (
    SELECT a.id, a.task_id, a.leased_at, a.expires_at, a.shown_order
    FROM {assignment} a JOIN {task} lt ON lt.id = a.task_id
    WHERE a.labeler_id = %(labeler)s AND a.state = 'live' AND a.expires_at > %(now)s
      AND lt.project_id = %(project)s
),
held AS (
    SELECT id, task_id, leased_at, expires_at, shown_order FROM live
    WHERE NOT (id = ANY(%(exclude)s::bigint[])) ORDER BY leased_at, id LIMIT 1
),
picked AS (
    SELECT t.id FROM {task} t
    WHERE t.project_id = %(project)s AND t.claims < t.target_labels
      AND NOT EXISTS (SELECT 1 FROM held)
      AND (SELECT count(*) FROM live) < %(max_live)s
      AND NOT EXISTS (
          SELECT 1 FROM {assignment} d
          WHERE d.task_id = t.id AND d.labeler_id = %(labeler)s AND d.state IN ('live', 'submitted', 'skipped'))
      AND NOT EXISTS (SELECT 1 FROM {annotation} n WHERE n.task_id = t.id AND n.labeler_id = %(labeler)s)
      AND (NOT %(settled)s OR t.claims = (SELECT s.claims FROM {task} s WHERE s.id = t.id))
    ORDER BY {order_by}
    LIMIT 1
    FOR UPDATE OF t SKIP LOCKED
),
bumped AS (
    UPDATE {task} t SET claims = t.claims + 1 FROM picked WHERE t.id = picked.id RETURNING t.id
),
inserted AS (
    INSERT INTO {assignment} (task_id, labeler_id, state, leased_at, expires_at, shown_order, skip_reason)
    SELECT b.id, %(labeler)s, 'live', %(now)s, %(expires)s,
           (SELECT jsonb_agg(tc.candidate_id ORDER BY (%(keys)s::int[])[tc.slot + 1], tc.slot)
            FROM {taskcandidate} tc WHERE tc.task_id = b.id),
           ''
    FROM bumped b
    RETURNING id, task_id, leased_at, expires_at, shown_order
),
lease AS (
    SELECT id, task_id, leased_at, expires_at, shown_order FROM held
    UNION ALL
    SELECT id, task_id, leased_at, expires_at, shown_order FROM inserted
)
SELECT l.id, l.task_id, l.leased_at, l.expires_at, l.shown_order, p.messages,
       (SELECT count(*) FROM live) AS live_count,
       (SELECT jsonb_agg(c.text ORDER BY o.ord)
        FROM jsonb_array_elements_text(l.shown_order) WITH ORDINALITY AS o(cid, ord)
        JOIN {candidate} c ON c.id = o.cid::bigint) AS texts,
       EXISTS (
           SELECT 1 FROM {assignment} x JOIN {task} xt ON xt.id = x.task_id
           WHERE x.state = 'live' AND x.expires_at <= %(now)s AND xt.project_id = %(project)s
       ) AS expired_waiting,
       (SELECT g.version
        FROM (SELECT id, version FROM {guideline} WHERE project_id = %(project)s
              ORDER BY version DESC LIMIT 1) g
        WHERE NOT EXISTS (
            SELECT 1 FROM {guidelineack} k WHERE k.guideline_id = g.id AND k.user_id = %(labeler)s)
       ) AS guideline_pending
FROM (SELECT {durability}) AS one
LEFT JOIN lease l ON true
LEFT JOIN {task} t ON t.id = l.task_id
LEFT JOIN {prompt} p ON p.id = t.prompt_id
"""


def _claim_statement() -> str:
    from annotate.models import Prompt

    tables = {
        name: connection.ops.quote_name(model._meta.db_table)
        for name, model in {
            "assignment": Assignment,
            "task": Task,
            "annotation": Annotation,
            "taskcandidate": TaskCandidate,
            "candidate": Candidate,
            "guideline": Guideline,
            "guidelineack": GuidelineAck,
            "prompt": Prompt,
        }.items()
    }
    # LEASE_CLAIM_ASYNC_COMMIT: the claim's own commit does not wait for the WAL flush (a few ms
    # here). A lease is soft state with a TTL: a crash in the following fraction of a second can
    # only lose the lease (the client's submit then answers 404 and it claims again), never an
    # annotation, and the task's claims are lost with it (same transaction). Only when the claim
    # is its own transaction (autocommit), so it never relaxes a caller's transaction.
    durability = (
        "set_config('synchronous_commit', 'off', true)"
        if getattr(settings, "LEASE_CLAIM_ASYNC_COMMIT", False) and connection.get_autocommit()
        else "1"
    )
    return _CLAIM_SQL.format(order_by=_claim_order_sql("t"), durability=durability, **tables)


def _shuffle_keys() -> list[int]:
    """A random permutation: slot i of the claimed task is shown at the rank of ``keys[i]``."""
    keys = list(range(_SHUFFLE_KEYS))
    _rng.shuffle(keys)
    return keys


def _json(value: object) -> object:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _claim_sql(
    *, project: Project, labeler: AbstractBaseUser, exclude: list[int], now: datetime, settled: bool
) -> tuple[LeaseView | None, bool, bool]:
    """The PostgreSQL claim: ``(lease or None, whether expired leases wait to be reclaimed,
    whether the labeler holds the most live leases allowed)``."""
    params = {
        "settled": settled,
        "project": project.pk,
        "labeler": labeler.pk,
        "now": now,
        "expires": now + timedelta(seconds=project.lease_ttl_seconds),
        "exclude": exclude,
        "max_live": MAX_LIVE_LEASES_PER_LABELER,
        "keys": _shuffle_keys(),
    }
    with connection.cursor() as cursor:
        cursor.execute(_claim_statement(), params)
        row = cursor.fetchone()
    (lease_id, task_id, leased_at, expires_at, shown_order, messages) = row[:6]
    live_count, texts, expired_waiting, pending = row[6:]
    if lease_id is None:
        return None, bool(expired_waiting), live_count >= MAX_LIVE_LEASES_PER_LABELER
    assignment = Assignment(
        id=lease_id,
        task_id=task_id,
        labeler_id=labeler.pk,
        state=AssignmentState.LIVE,
        leased_at=leased_at,
        expires_at=expires_at,
        finished_at=None,
        shown_order=_json(shown_order),
        skip_reason="",
    )
    assignment._state.adding = False
    assignment._state.db = connection.alias
    view = LeaseView(
        assignment=assignment,
        kind=project.kind,
        messages=_json(messages),
        candidate_texts=list(_json(texts) or []),
        guideline_pending=pending,
    )
    return view, bool(expired_waiting), False


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
        strength_value(strength)
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
    *,
    project: Project,
    slots: list[int],
    ratings: object,
    flagged: bool,
    dimensions: list[Dimension] | None = None,
) -> dict[str, dict[str, int]]:
    if ratings is None:
        ratings = {}
    if not isinstance(ratings, dict):
        raise InvalidInput("ratings must map a dimension to {candidate_id: score}.", field="ratings")
    dims = {d.key: d for d in (project.dimensions.all() if dimensions is None else dimensions)}
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
    roles: Collection[str] | None = None,
    now: datetime | None = None,
    pre_annotation_shown: bool = False,
) -> tuple[Annotation, bool]:
    """Record the labeler's judgment on a live lease. Returns ``(annotation, created)``.

    Pairwise ``choice`` is in the labeler's terms: ``left``/``right`` (mapped back to canonical A/B
    through the lease's ``shown_order``), ``tie`` or ``both_bad``. Ranking takes candidate ids,
    best first, groups for ties. Idempotent: a replay on an already-submitted lease returns the first
    annotation and writes nothing. Refuses, writing nothing: someone else's lease (403), an expired,
    skipped or released lease (409), guidelines not yet acknowledged (409), invalid values (400).
    ``roles``: see ``_require_active_labeler``. Three statements in one transaction: the locking
    read (``_lock_for_submit``), the insert, the lease's state.
    ``pre_annotation_shown``: the labeling page offers AI judges' verdicts preselected; the
    annotation records ``pre_annotated`` when the project pre-annotates and this task has one.
    """
    now = now or timezone.now()
    with transaction.atomic():
        assignment = _lock_for_submit(assignment_id=assignment_id, labeler=labeler)
        if assignment.state == AssignmentState.SUBMITTED:
            return Annotation.objects.get(assignment=assignment), False
        _check_live(assignment, now)
        task = assignment.task
        project = task.project
        _require_active_labeler(project=project, labeler=labeler, roles=roles)

        if assignment.guideline_id_ is not None and not assignment.guideline_acked_:
            raise GuidelineNotAcknowledged(
                f"Guidelines v{assignment.guideline_version_} were published; read and acknowledge "
                "them before submitting."
            )

        flagged = bool(flagged)
        flag_reason = _clean_reason(flag_reason, "flag_reason") if flagged else ""
        slots = [s["candidate"] for s in sorted(_json(assignment.slots_) or [], key=lambda s: s["slot"])]
        dimensions = [
            Dimension(key=d["key"], label=d["label"], required=bool(d["required"]), position=d["position"])
            for d in sorted(_json(assignment.dimensions_) or [], key=lambda d: (d["position"], d["id"]))
        ]
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
        clean_ratings = _validate_ratings(
            project=project, slots=slots, ratings=ratings, flagged=flagged, dimensions=dimensions
        )
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
            # No savepoint: a unique violation (this labeler already judged the task, e.g. through
            # an import) answers Conflict and the whole transaction rolls back, writing nothing.
            with transaction.atomic(savepoint=False):
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
                    guideline_id=assignment.guideline_id_,
                    time_spent_ms=time_spent_ms,
                    pre_annotated=pre_annotation_shown and _pre_annotated(task),
                )
        except IntegrityError:
            raise Conflict("You already judged this task.") from None
        assignment.state = AssignmentState.SUBMITTED
        assignment.finished_at = now
        assignment.save(update_fields=["state", "finished_at"])
    return annotation, True


def _lock_for_submit(*, assignment_id: int, labeler: AbstractBaseUser) -> Assignment:
    """``_lock_own_assignment`` that also brings, in the same locking read, what a submission is
    validated against: the task's slots (``slots_``), the project's dimensions (``dimensions_``),
    and the current guideline (``guideline_id_``, ``guideline_version_``) with whether this
    labeler acknowledged it (``guideline_acked_``). On PostgreSQL one hand-written statement
    (compiling the ORM query cost several times its execution); elsewhere the ORM query."""
    if connection.vendor == "postgresql":
        assignment = _lock_for_submit_sql(assignment_id=assignment_id, labeler=labeler)
    else:
        assignment = _lock_for_submit_orm(assignment_id=assignment_id, labeler=labeler)
    if assignment is None:
        raise NotFound("No such assignment.")
    if assignment.labeler_id != labeler.pk:
        raise Forbidden("This task is leased to someone else.")
    return assignment


_SUBMIT_LOCK_SQL = """
SELECT {assignment_cols}, {task_cols}, {project_cols},
       (SELECT jsonb_agg(jsonb_build_object('slot', tc.slot, 'candidate', tc.candidate_id))
        FROM {taskcandidate} tc WHERE tc.task_id = a.task_id) AS slots_,
       (SELECT jsonb_agg(jsonb_build_object('id', d.id, 'key', d.key, 'label', d.label,
                                            'required', d.required, 'position', d.position))
        FROM {dimension} d WHERE d.project_id = t.project_id) AS dimensions_,
       g.id AS guideline_id_, g.version AS guideline_version_,
       EXISTS (SELECT 1 FROM {guidelineack} k WHERE k.guideline_id = g.id AND k.user_id = %(labeler)s)
           AS guideline_acked_
FROM {assignment} a
JOIN {task} t ON t.id = a.task_id
JOIN {project} p ON p.id = t.project_id
LEFT JOIN LATERAL (
    SELECT id, version FROM {guideline} WHERE project_id = t.project_id ORDER BY version DESC LIMIT 1
) g ON true
WHERE a.id = %(assignment)s
FOR UPDATE OF a
"""


def _columns(model, alias: str) -> str:
    qn = connection.ops.quote_name
    return ", ".join(f"{alias}.{qn(f.column)}" for f in model._meta.concrete_fields)


def _from_row(model, values: list):
    """A model instance from raw column values in ``concrete_fields`` order (JSON decoded)."""
    fields = model._meta.concrete_fields
    values = [
        _json(v) if isinstance(f, models.JSONField) and v is not None else v
        for f, v in zip(fields, values, strict=True)
    ]
    return model.from_db(connection.alias, [f.attname for f in fields], values)


def _lock_for_submit_sql(*, assignment_id: int, labeler: AbstractBaseUser) -> Assignment | None:
    qn = connection.ops.quote_name
    sql = _SUBMIT_LOCK_SQL.format(
        assignment_cols=_columns(Assignment, "a"),
        task_cols=_columns(Task, "t"),
        project_cols=_columns(Project, "p"),
        assignment=qn(Assignment._meta.db_table),
        task=qn(Task._meta.db_table),
        project=qn(Project._meta.db_table),
        taskcandidate=qn(TaskCandidate._meta.db_table),
        dimension=qn(Dimension._meta.db_table),
        guideline=qn(Guideline._meta.db_table),
        guidelineack=qn(GuidelineAck._meta.db_table),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, {"assignment": assignment_id, "labeler": labeler.pk})
        row = cursor.fetchone()
    if row is None:
        return None
    sizes = [len(m._meta.concrete_fields) for m in (Assignment, Task, Project)]
    a_end, t_end = sizes[0], sizes[0] + sizes[1]
    p_end = t_end + sizes[2]
    assignment = _from_row(Assignment, list(row[:a_end]))
    task = _from_row(Task, list(row[a_end:t_end]))
    task.project = _from_row(Project, list(row[t_end:p_end]))
    assignment.task = task
    slots, dimensions, guideline_id, guideline_version, acked = row[p_end:]
    assignment.slots_ = _json(slots)
    assignment.dimensions_ = _json(dimensions)
    assignment.guideline_id_ = guideline_id
    assignment.guideline_version_ = guideline_version
    assignment.guideline_acked_ = acked
    return assignment


def _lock_for_submit_orm(*, assignment_id: int, labeler: AbstractBaseUser) -> Assignment | None:
    current_guideline = Guideline.objects.filter(project_id=OuterRef("task__project_id")).order_by("-version")
    slots = (
        TaskCandidate.objects.filter(task_id=OuterRef("task_id"))
        .order_by()
        .values("task_id")
        .annotate(j=JSONList(JSONObject(slot="slot", candidate="candidate_id")))
        .values("j")[:1]
    )
    dimensions = (
        Dimension.objects.filter(project_id=OuterRef("task__project_id"))
        .order_by()
        .values("project_id")
        .annotate(
            j=JSONList(
                JSONObject(id="id", key="key", label="label", required="required", position="position")
            )
        )
        .values("j")[:1]
    )
    qs = (
        Assignment.objects.select_related("task", "task__project")
        .annotate(
            slots_=Subquery(slots),
            dimensions_=Subquery(dimensions),
            guideline_id_=Subquery(current_guideline.values("id")[:1]),
            guideline_version_=Subquery(current_guideline.values("version")[:1]),
            guideline_acked_=Exists(
                GuidelineAck.objects.filter(
                    user_id=labeler.pk,
                    guideline_id=Subquery(
                        Guideline.objects.filter(project_id=OuterRef(OuterRef("task__project_id")))
                        .order_by("-version")
                        .values("id")[:1]
                    ),
                )
            ),
        )
        .select_for_update(of=("self",))
        .order_by()
    )
    return next(iter(qs.filter(pk=assignment_id)[:1]), None)


@dataclass(frozen=True)
class Undone:
    """What an undo did: the lease it made live again, and the leases it gave back to the pool to
    keep the labeler within ``MAX_LIVE_LEASES_PER_LABELER`` (ids, newest first; usually none)."""

    assignment: Assignment
    released_assignment_ids: list[int]


def annotation_undo(*, assignment_id: int, labeler: AbstractBaseUser, now: datetime | None = None) -> Undone:
    """Take back a submission while its lease is still live; the task is open again for this labeler.
    A judgment a manager has accepted or rejected is kept (``JudgmentReviewed``, 409): undoing it
    would drop the verdict with it.
    An automatic extra-label raise that counted the undone label is withdrawn in the same
    transaction (``extra_labels.extra_label_withdraw``).

    Safe to send again: an undo of a lease that is live already (the first undo's answer was lost
    on the way, and the page asks again) changes nothing and answers as the first did: the task is
    open on this lease until it ends, and ``released_assignment_ids`` names the leases an undo of
    it gave back (read from their audit events), so the page drops them this time.

    The reopened lease counts towards ``MAX_LIVE_LEASES_PER_LABELER``: when the labeler already
    holds that many other live leases in the project (the task on screen and a prefetched one),
    the newest of them (the prefetched task, not reached yet) goes back to the pool in the same
    transaction, audited (``assignment.release``, by the labeler), so a labeler never holds more
    live leases than a claim would give."""
    now = now or timezone.now()
    with transaction.atomic():
        assignment = _lock_own_assignment(assignment_id=assignment_id, labeler=labeler)
        if assignment.state not in (AssignmentState.SUBMITTED, AssignmentState.LIVE):
            raise LeaseNotLive("Only a submitted task can be undone.")
        if assignment.expires_at <= now:
            raise LeaseExpired("Too late to undo: the lease on that task has ended.")
        if assignment.state == AssignmentState.LIVE:  # undone already: a retry
            return Undone(
                assignment=assignment, released_assignment_ids=leases_released_by_undo(assignment=assignment)
            )
        # Locked, as ``annotation_review`` locks the judgment it reviews: a verdict saved meanwhile
        # is seen here, and one saved after this undo finds no judgment.
        annotation_ids = list(
            Annotation.objects.filter(assignment=assignment).select_for_update().values_list("id", flat=True)
        )
        if AnnotationReview.objects.filter(annotation_id__in=annotation_ids).exists():
            raise JudgmentReviewed(
                "A manager has already reviewed this judgment; it can no longer be undone.",
            )
        Annotation.objects.filter(pk__in=annotation_ids).delete()
        assignment.state = AssignmentState.LIVE
        assignment.finished_at = None
        assignment.save(update_fields=["state", "finished_at"])
        # The other leases before the task row: this transaction never waits on an assignment row
        # (a sweep may hold one while it updates tasks) while holding a task row.
        released = _leases_over_cap_release(assignment=assignment, labeler=labeler, now=now)
        for annotation_id in annotation_ids:
            extra_label_withdraw(task_id=assignment.task_id, annotation_id=annotation_id)
    return Undone(assignment=assignment, released_assignment_ids=released)


def _leases_over_cap_release(
    *, assignment: Assignment, labeler: AbstractBaseUser, now: datetime
) -> list[int]:
    """Give back the labeler's newest live leases in ``assignment``'s project (other than
    ``assignment``, just made live again) beyond ``MAX_LIVE_LEASES_PER_LABELER``, each audited as
    released by the labeler; returns their ids, newest first. Locks them (ordered by id, so two
    undos of one labeler never lock in opposite orders); a lease submitted or skipped meanwhile is
    no longer live once locked and is left alone."""
    project = assignment.task.project
    others = list(
        _live_leases(project=project, labeler=labeler, now=now)
        .exclude(pk=assignment.pk)
        .select_for_update(of=("self",))
        .order_by("id")
    )
    excess = len(others) + 1 - MAX_LIVE_LEASES_PER_LABELER
    if excess <= 0:
        return []
    newest = sorted(others, key=lambda a: (a.leased_at, a.pk), reverse=True)[:excess]
    # The project's row before any task's, as a settings change takes them (its new overlap moves
    # every task): without it, this undo holding the released task's row and then locking the
    # undone one (``extra_label_withdraw``) and an overlap change holding that one and waiting on
    # the first deadlocked, and PostgreSQL killed one of them.
    Project.objects.select_for_update(no_key=True).filter(pk=project.pk).exists()
    # Then the rows of the released tasks and of the undone one (``extra_label_withdraw`` locks it
    # next) in id order, as the expiry sweep and a deactivation take tasks: releasing first and
    # locking the undone task after deadlocked with a sweep holding the undone task (a lower id)
    # and waiting on the released one.
    tasks_lock(Task.objects.filter(pk__in={assignment.task_id, *(a.task_id for a in newest)}))
    _leases_end([(a.pk, a.task_id) for a in newest], state=AssignmentState.RELEASED, now=now)
    for lease in newest:
        audit_record(
            actor=labeler,
            project=project,
            action="assignment.release",
            target=lease,
            details={"reason": "undo", "undone_assignment_id": assignment.pk, "task_id": lease.task_id},
        )
    return [a.pk for a in newest]


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
        return _leases_end(rows, state=AssignmentState.RELEASED, now=now)


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
