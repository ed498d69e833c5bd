"""Task order "active": priorities from the expected information of one more vote on each pair.

Leasing offers open tasks by ``(claims, -priority, id)`` (``task_claim_next``): fewest claims first
stays the primary key, so no task starves and none is over-assigned; ``priority`` only breaks the
ties among the tasks with the fewest claims. Under ``task_order = "fewest_labels"`` (the default)
every priority is 0 and the order is the plain fewest-labels-first, oldest-first.

Under ``task_order = "active"`` this module keeps the priorities up to date:

* the project's pairwise votes (people's, not rejected in review: ``counted_judgments``; an AI
  judge's label is not a vote) are counted per (model of slot A, model of slot B) in one grouped
  query; a Bradley-Terry fit with a Gaussian prior (``annotate.active_pairs.fit_bt``: ties and
  "both bad" count half a win each way) gives each model's strength with its Laplace covariance;
* an open task's priority is the expected information of one more vote between its two
  candidates' models (``pair_information``: large when the two are close and their order
  uncertain) plus a "too few votes" bonus ``FEW_VOTES_BONUS / (1 + votes on that model pair)``,
  so pairs nobody compared yet come first;
* priorities are rounded to 20 steps per decade and only the ones that moved more than 1.5
  steps are written, one ``UPDATE ... WHERE id IN (...)`` per distinct value (a value per model pair), so
  a refresh after a few votes rewrites the tasks of the few pairs that moved, not every open task
  (each rewrite also leaves a dead entry in the claim index).

It runs in the background (Celery task ``annotate.task_priorities_refresh``): enqueued through the
outbox after a submit, at most once per ``PRIORITY_DEBOUNCE_S`` per project (a cache key), and by
the periodic sweep ``annotate.task_priorities_sweep`` that picks up the votes of the last window.
Ranking tasks keep priority 0 (their order stays fewest-labels-first).
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict

import numpy as np
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, F, FilteredRelation, Q

from annotate.active_pairs import fit_bt, pair_information
from annotate.models import Choice, Project, Task, TaskKind, TaskOrder
from annotate.selectors import counted_judgments
from annotate.services.leasing import tasks_lock
from core.outbox import outbox_enqueue

logger = logging.getLogger(__name__)

PRIORITY_DEBOUNCE_S = 60
FEW_VOTES_BONUS = 0.05
PRIORITY_STEPS = 20  # per decade
# a stored priority is kept while the new one is within this many steps of it (no flapping at a
# step's edge, and no rewrite for a change that cannot reorder much)
PRIORITY_HYSTERESIS_STEPS = 1.5
UNKNOWN_MODEL = ""
_UPDATE_CHUNK = 5000


def _debounce_key(project_id: int) -> str:
    return f"prefhub:task-priorities:{project_id}"


def task_priorities_request(*, project: Project) -> bool:
    """Enqueue a priority refresh for ``project`` (in the caller's transaction, through the outbox),
    unless one was requested in the last ``PRIORITY_DEBOUNCE_S``. Returns whether it enqueued."""
    if project.task_order != TaskOrder.ACTIVE or project.kind != TaskKind.PAIRWISE:
        return False
    if not cache.add(_debounce_key(project.pk), 1, PRIORITY_DEBOUNCE_S):
        return False
    outbox_enqueue("annotate.task_priorities_refresh", project.pk)
    return True


def task_order_changed(*, project: Project) -> None:
    """Called by the settings service when ``task_order`` changed: back to fewest-labels, every
    priority goes back to 0 (the order is exactly the old one again); to active, a refresh is
    enqueued at once."""
    if project.task_order == TaskOrder.ACTIVE:
        cache.delete(_debounce_key(project.pk))
        task_priorities_request(project=project)
    else:
        Task.objects.filter(project=project).exclude(priority=0).update(priority=0)


def _vote_counts(project: Project) -> dict[tuple[str, str], dict[str, int]]:
    """``{(model of slot A, model of slot B): {choice: votes}}`` over the project's pairwise votes:
    people's, not rejected in review (``counted_judgments``); an AI judge's label is not a vote."""
    rows = (
        counted_judgments(project=project)
        .filter(choice__isnull=False)
        .annotate(
            slot_a=FilteredRelation("task__slots", condition=Q(task__slots__slot=0)),
            slot_b=FilteredRelation("task__slots", condition=Q(task__slots__slot=1)),
        )
        .values_list("slot_a__candidate__model_name", "slot_b__candidate__model_name", "choice")
        .annotate(n=Count("id"))
        .order_by()
    )
    out: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for ma, mb, choice, n in rows:
        out[(ma or UNKNOWN_MODEL, mb or UNKNOWN_MODEL)][choice] = n
    return out


def pair_priorities(
    counts: dict[tuple[str, str], dict[str, int]], pairs: list[tuple[str, str]]
) -> dict[tuple[str, str], float]:
    """Priority of one more vote on each (model A, model B) pair given the vote counts (pure)."""
    names = sorted({m for key in [*counts, *pairs] for m in key})
    index = {m: i for i, m in enumerate(names)}
    wins = np.zeros((len(names), len(names)))
    pair_votes: dict[frozenset, int] = defaultdict(int)
    for (ma, mb), by_choice in counts.items():
        i, j = index[ma], index[mb]
        total = sum(by_choice.values())
        pair_votes[frozenset((ma, mb))] += total
        if i == j:
            continue
        half = (total - by_choice.get(Choice.A, 0) - by_choice.get(Choice.B, 0)) / 2.0
        wins[i, j] += by_choice.get(Choice.A, 0) + half
        wins[j, i] += by_choice.get(Choice.B, 0) + half
    if not pairs:
        return {}
    model = fit_bt(wins)
    ia = np.array([index[a] for a, _ in pairs])
    ib = np.array([index[b] for _, b in pairs])
    votes = np.array([pair_votes.get(frozenset(p), 0) for p in pairs], dtype=float)
    info = np.where(ia == ib, 0.0, pair_information(ia, ib, model=model))
    priority = _quantize(info + FEW_VOTES_BONUS / (1.0 + votes))
    return {p: float(v) for p, v in zip(pairs, priority.tolist(), strict=True)}


def _quantize(values: np.ndarray) -> np.ndarray:
    """Round to ``PRIORITY_STEPS`` steps per decade (about 12 % apart): a few more votes move most
    pairs' information a little, and without rounding every refresh would rewrite every open task
    (and the claim index) for changes that cannot matter; with it only the pairs that moved a
    step are written. Equal steps fall back to oldest first."""
    v = np.maximum(np.asarray(values, dtype=float), 1e-12)
    return 10.0 ** (np.round(np.log10(v) * PRIORITY_STEPS) / PRIORITY_STEPS)


def _close(old: float, new: float) -> bool:
    if old <= 0 or new <= 0:
        return False
    return abs(math.log10(new / old)) * PRIORITY_STEPS < PRIORITY_HYSTERESIS_STEPS


def task_priorities_refresh(*, project_id: int) -> int:
    """Recompute the open tasks' priorities of a project under ``task_order = "active"``.

    Idempotent (a message sent twice recomputes the same values). No lock is held on the tasks
    while computing: each write is a short transaction that locks a chunk of the chosen rows in id
    order (``leasing.tasks_lock``, so it never deadlocks with the expiry sweep) and sets their
    ``priority``, never ``claims``, so a concurrent claim only waits for one short write. Returns how many tasks
    changed."""
    cache.delete(_debounce_key(project_id))  # submits from now on may schedule the next refresh
    project = Project.objects.filter(pk=project_id).first()
    if project is None or project.kind != TaskKind.PAIRWISE:
        return 0
    if project.task_order != TaskOrder.ACTIVE:
        return Task.objects.filter(project=project).exclude(priority=0).update(priority=0)
    open_tasks = list(
        Task.objects.filter(project=project, claims__lt=F("target_labels"))
        .annotate(
            slot_a=FilteredRelation("slots", condition=Q(slots__slot=0)),
            slot_b=FilteredRelation("slots", condition=Q(slots__slot=1)),
        )
        .values_list("id", "slot_a__candidate__model_name", "slot_b__candidate__model_name", "priority")
        .order_by()
    )
    pairs = sorted({(a or UNKNOWN_MODEL, b or UNKNOWN_MODEL) for _, a, b, _ in open_tasks})
    priorities = pair_priorities(_vote_counts(project), pairs)
    changed: dict[float, list[int]] = defaultdict(list)
    for task_id, a, b, old in open_tasks:
        new = priorities[(a or UNKNOWN_MODEL, b or UNKNOWN_MODEL)]
        if old != new and not _close(old, new):
            changed[new].append(task_id)
    written = 0
    for value, ids in changed.items():
        for start in range(0, len(ids), _UPDATE_CHUNK):
            with transaction.atomic():
                chunk = Task.objects.filter(pk__in=ids[start : start + _UPDATE_CHUNK])
                tasks_lock(chunk)  # in id order, as the expiry sweep takes them
                written += chunk.update(priority=value)
    logger.info(
        "task priorities of project %s: %d of %d open tasks changed", project_id, written, len(open_tasks)
    )
    return written


def task_priorities_sweep() -> int:
    """Periodic: refresh every active pairwise project (picks up the votes a debounce window left
    behind). Returns how many tasks changed."""
    ids = Project.objects.filter(task_order=TaskOrder.ACTIVE, kind=TaskKind.PAIRWISE).values_list(
        "pk", flat=True
    )
    return sum(task_priorities_refresh(project_id=pk) for pk in ids)
