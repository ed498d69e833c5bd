"""Probe: many tiny odd projects (1-4 tasks, 1-3 labelers, missing labels, ties, both bad, AI
judges, imported labels, missing strength and ratings, two guideline versions): the report and the
leaderboard build without error, hold no NaN/Infinity (strict JSON), and the overall percent
agreement equals a direct count."""

from __future__ import annotations

import json
import random

import pytest

from annotate.models import Annotation, Guideline, Task, TaskKind
from annotate.selectors_leaderboard import project_leaderboard
from annotate.services import reports
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db

CHOICES = ["a", "b", "tie", "both_bad", None]


def _percent(by_task):
    same = pairs = 0
    for labels in by_task.values():
        m = len(labels)
        pairs += m * (m - 1)
        same += sum(labels.count(c) * (labels.count(c) - 1) for c in set(labels))
    return None if pairs == 0 else same / pairs


@pytest.mark.parametrize("seed", range(12))
def test_tiny_pairwise_projects(make_project, labeler_in, seed):
    rng = random.Random(seed)
    project = make_project(dimensions=["Helpful"] if seed % 2 else [])
    add_tasks(project, prompts=rng.randint(1, 4))
    g1 = Guideline.objects.create(project=project, version=1, body="v1")
    g2 = Guideline.objects.create(project=project, version=2, body="v2")
    labs = [labeler_in(project, f"f{seed}-{i}") for i in range(rng.randint(1, 3))]
    tasks = list(Task.objects.filter(project=project).prefetch_related("slots").order_by("id"))
    rows, counted = [], {}
    for task in tasks:
        ids = [s.candidate_id for s in sorted(task.slots.all(), key=lambda s: s.slot)]
        for lab in labs:
            choice = rng.choice(CHOICES)
            if choice is None:
                continue
            source = rng.choice(["human", "human", "imported", "judge"])
            ratings = {}
            if seed % 2 and rng.random() < 0.5:
                ratings = {"helpful": {str(ids[0]): rng.randint(1, 3), str(ids[1]): rng.randint(1, 3)}}
            rows.append(
                Annotation(
                    task=task,
                    labeler=lab,
                    choice=choice,
                    source=source,
                    strength=rng.choice([None, 1, 2]) if choice in ("a", "b") else None,
                    shown_order=rng.choice([[], ids, ids[::-1]]),
                    guideline=rng.choice([None, g1, g2]),
                    time_spent_ms=rng.choice([None, 0, 500]),
                    ratings=ratings,
                )
            )
            if source != "judge":
                counted.setdefault(task.pk, []).append(choice)
    Annotation.objects.bulk_create(rows)
    report = reports.report_build(project, bootstrap=20, ci_resamples=50)
    json.dumps(report, allow_nan=False)
    assert report["overall"]["percent_agreement"] == pytest.approx(_percent(counted))
    board = project_leaderboard(project=project, bootstrap_rounds=20)
    json.dumps(board, allow_nan=False)
    board = project_leaderboard(project=project, style=True, bootstrap_rounds=20)
    json.dumps(board, allow_nan=False)


@pytest.mark.parametrize("seed", range(10))
def test_tiny_ranking_projects(make_project, labeler_in, seed):
    rng = random.Random(seed)
    k = rng.choice([2, 3, 16])
    project = make_project(kind=TaskKind.RANKING, ranking_k=k, allow_rank_ties=True, dimensions=["Helpful"])
    add_tasks(project, prompts=rng.randint(1, 3), candidates_per_prompt=k)
    labs = [labeler_in(project, f"rf{seed}-{i}") for i in range(rng.randint(1, 3))]
    tasks = list(Task.objects.filter(project=project).prefetch_related("slots").order_by("id"))
    rows = []
    for task in tasks:
        ids = [s.candidate_id for s in sorted(task.slots.all(), key=lambda s: s.slot)]
        for lab in labs:
            if rng.random() < 0.2:
                continue
            shuffled = ids[:]
            rng.shuffle(shuffled)
            style = rng.choice(["all_tied", "strict", "groups"])
            if style == "all_tied":
                ranking = [shuffled]
            elif style == "strict":
                ranking = [[c] for c in shuffled]
            else:
                cut = rng.randint(1, len(shuffled) - 1)
                ranking = [shuffled[:cut], shuffled[cut:]]
            ratings = {}
            if rng.random() < 0.5:
                ratings = {"helpful": {str(c): rng.choice([1, 1, 2]) for c in ids}}
            rows.append(
                Annotation(
                    task=task,
                    labeler=lab,
                    ranking=ranking,
                    source=rng.choice(["human", "imported", "judge"]),
                    shown_order=ids,
                    time_spent_ms=100,
                    ratings=ratings,
                )
            )
    Annotation.objects.bulk_create(rows)
    report = reports.report_build(project, bootstrap=20, ci_resamples=50)
    json.dumps(report, allow_nan=False)
    board = project_leaderboard(project=project, bootstrap_rounds=20)
    json.dumps(board, allow_nan=False)
