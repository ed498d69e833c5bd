"""Kendall's W of a rating dimension on a ranking project counts every task whose raters rated the
same responses, whichever responses those are.

An optional dimension may be rated on some of a task's responses only. Before: the tasks were
grouped by how many raters and rated responses they had, and a whole group was dropped when its
tasks had not all rated the *same slots* as the group's first task: a task rated on A and B beside
one rated on B and C (both two responses by two raters) left both out, so the dimension's W read
"no value over 0 tasks" (or left good tasks out of the mean). Recomputed here from the raw ratings.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import rankdata

from annotate.models import Annotation, Task, TaskKind
from annotate.services.reports import report_build
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


def _w(rows: list[list[float]]) -> float:
    """Kendall's W of raters x responses (scores, higher better), average ranks, tie-corrected."""
    ranks = np.array([rankdata([-s for s in row]) for row in rows])
    m, n = ranks.shape
    s = ((ranks.sum(axis=0) - m * (n + 1) / 2) ** 2).sum()
    ties = sum((c**3 - c) for row in ranks for c in np.unique(row, return_counts=True)[1])
    return 12 * s / (m * m * (n**3 - n) - m * ties)


def test_each_task_is_counted_with_the_responses_its_raters_rated(make_project, labeler_in):
    project = make_project(
        kind=TaskKind.RANKING,
        ranking_k=3,
        overlap=2,
        dimensions=[{"key": "style", "label": "Style", "required": False}],
    )
    add_tasks(project, prompts=3, candidates_per_prompt=3)
    alice, bob = labeler_in(project, "alice"), labeler_in(project, "bob")
    tasks = list(Task.objects.filter(project=project).order_by("id"))
    slots = [list(t.slots.order_by("slot").values_list("candidate_id", flat=True)) for t in tasks]
    # which responses each task's raters score on "style" (the same for both raters of a task),
    # and the scores alice and bob give them
    rated = [(slots[0][:2], [5, 1], [4, 2]), (slots[1][1:], [1, 5], [5, 1]), (slots[2], [3, 2, 1], [3, 1, 2])]
    expected = []
    for task, cands, (rated_ids, a_scores, b_scores) in zip(tasks, slots, rated, strict=True):
        for user, scores in ((alice, a_scores), (bob, b_scores)):
            Annotation.objects.create(
                task=task,
                labeler=user,
                ranking=[[c] for c in cands],
                ratings={"style": {str(c): s for c, s in zip(rated_ids, scores, strict=True)}},
            )
        expected.append(_w([a_scores, b_scores]))

    (block,) = report_build(project, bootstrap=0, ci_resamples=0)["by_dimension"]
    assert block["kendall_w_items"] == 3
    assert block["kendall_w_mean"] == pytest.approx(float(np.mean(expected)))
