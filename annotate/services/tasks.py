"""Turning candidates into comparison tasks (pairwise pairs or K-way rankings)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.db import transaction

from annotate.errors import InvalidInput
from annotate.models import Project, Task, TaskCandidate, TaskKind
from annotate.services.bulk import bulk_insert


class PairMode:
    ALL_PAIRS = "all_pairs"
    SAMPLED_PAIRS = "sampled_pairs"
    RANKING = "ranking"
    NONE = "none"

    values = (ALL_PAIRS, SAMPLED_PAIRS, RANKING, NONE)


@dataclass
class TaskSpec:
    """One task to create: a prompt and its candidates in canonical slot order."""

    prompt_id: int
    candidate_ids: list[int]
    is_gold: bool = False
    gold_choice: str = ""
    gold_ranking: list | None = None
    extra: dict = field(default_factory=dict)


def default_mode_for(project: Project) -> str:
    return PairMode.RANKING if project.kind == TaskKind.RANKING else PairMode.ALL_PAIRS


def check_mode(*, project: Project, mode: str, pairs_per_prompt: int | None) -> None:
    if mode not in PairMode.values:
        raise InvalidInput(f"Task mode must be one of {', '.join(PairMode.values)}.", field="task_mode")
    if mode == PairMode.RANKING and project.kind != TaskKind.RANKING:
        raise InvalidInput("Ranking tasks need a ranking project.", field="task_mode")
    if mode in (PairMode.ALL_PAIRS, PairMode.SAMPLED_PAIRS) and project.kind != TaskKind.PAIRWISE:
        raise InvalidInput("Pairwise tasks need a pairwise project.", field="task_mode")
    if mode == PairMode.SAMPLED_PAIRS and (pairs_per_prompt is None or pairs_per_prompt < 1):
        raise InvalidInput("Sampled pairs need pairs_per_prompt of at least 1.", field="pairs_per_prompt")
    if mode != PairMode.SAMPLED_PAIRS and pairs_per_prompt is not None:  # never ignored silently
        raise InvalidInput(
            f"pairs_per_prompt is used only with task mode sampled_pairs (the task mode is {mode}): "
            "choose sampled_pairs, or leave pairs_per_prompt out.",
            field="pairs_per_prompt",
        )


def _pair_at(n: int, m: int) -> tuple[int, int]:
    """The ``m``-th pair of ``itertools.combinations(range(n), 2)``, without enumerating them."""
    first = 0
    while m >= n - 1 - first:
        m -= n - 1 - first
        first += 1
    return first, first + 1 + m


def tasks_per_prompt(n_candidates: int, *, mode: str, pairs_per_prompt: int | None = None) -> int:
    """How many tasks ``candidate_groups`` makes for a prompt with ``n_candidates`` candidates."""
    if mode == PairMode.NONE or n_candidates < 2:
        return 0
    if mode == PairMode.RANKING:
        return 1
    total = n_candidates * (n_candidates - 1) // 2
    return min(pairs_per_prompt or 1, total) if mode == PairMode.SAMPLED_PAIRS else total


def candidate_groups(
    candidate_ids: Sequence[int],
    *,
    mode: str,
    rng: random.Random,
    pairs_per_prompt: int | None = None,
    k: int | None = None,
) -> list[list[int]]:
    """Which candidates go together in a task, for one prompt.

    all_pairs: every unordered pair; sampled_pairs: ``pairs_per_prompt`` of them drawn without
    replacement; ranking: one task of ``k`` candidates drawn at random (fewer if the prompt has
    fewer, none below 2). Slot order inside a pair is shuffled so slot A carries no meaning.
    """
    ids = list(candidate_ids)
    if mode == PairMode.NONE or len(ids) < 2:
        return []
    if mode == PairMode.RANKING:
        size = min(k or len(ids), len(ids))
        return [rng.sample(ids, size)]
    if mode == PairMode.SAMPLED_PAIRS:
        # Draw pair *indices* (the same draw as sampling the full list, without building it).
        total = len(ids) * (len(ids) - 1) // 2
        picks = rng.sample(range(total), min(pairs_per_prompt or 1, total))
        pairs = [[ids[i] for i in _pair_at(len(ids), m)] for m in picks]
    else:
        pairs = [list(p) for p in itertools.combinations(ids, 2)]
    for pair in pairs:
        rng.shuffle(pair)
    return pairs


def tasks_bulk_create(
    *,
    project: Project,
    specs: Iterable[TaskSpec],
    generation_job_id: int | None = None,
    ids_only: bool = False,
    ids: Sequence[int] | None = None,
    savepoint: bool = True,
) -> list[Task] | list[int]:
    """Create tasks and their candidate slots in bulk; returns Task objects carrying their new ids
    (nothing is read back), or just the ids with ``ids_only``. ``ids``: task ids reserved with
    ``reserve_ids``; ``savepoint=False`` for a caller whose transaction fails whole anyway (an
    import: no savepoint round trips per batch)."""
    specs = list(specs)
    if not specs:
        return []
    with transaction.atomic(savepoint=savepoint):
        ids = bulk_insert(
            Task,
            [
                "project_id",
                "prompt_id",
                "target_labels",
                "claims",
                "is_gold",
                "gold_choice",
                "gold_ranking",
                "generation_job_id",
            ],
            [
                (
                    project.pk,
                    s.prompt_id,
                    project.overlap,
                    0,
                    s.is_gold,
                    s.gold_choice,
                    s.gold_ranking,
                    generation_job_id,
                )
                for s in specs
            ],
            ids=ids,
        )
        bulk_insert(
            TaskCandidate,
            ["task_id", "candidate_id", "slot"],
            [
                (task_id, cid, slot)
                for task_id, s in zip(ids, specs, strict=True)
                for slot, cid in enumerate(s.candidate_ids)
            ],
            with_ids=False,
        )
    if ids_only:
        return ids
    return [
        Task(
            pk=task_id,
            project=project,
            prompt_id=s.prompt_id,
            target_labels=project.overlap,
            is_gold=s.is_gold,
        )
        for task_id, s in zip(ids, specs, strict=True)
    ]
