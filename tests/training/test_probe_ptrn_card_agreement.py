"""The dataset card says what the manifest says about agreement: two labelers who disagree on every
comparison have a pairwise agreement of 0 (the manifest's 0.0), not "n/a" (which the card keeps for
an export with no comparison of 2+ votes, where the manifest has null)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from annotate.models import Annotation, Task
from tests.conftest import add_tasks
from training.services.exports import export_create, export_run

pytestmark = pytest.mark.django_db


def _export(project):
    export = export_create(project=project, format="trl", options={"test_size": 0}, enqueue=False)
    return export_run(export_id=export.pk)


def _card_agreement(export) -> str:
    card = (Path(export.path) / "README.md").read_text(encoding="utf-8")
    (line,) = [line for line in card.splitlines() if line.startswith("| pairwise agreement |")]
    return line


def _independent_agreement(project) -> float | None:
    """Pairwise agreement from the raw annotations: per task, the share of labeler pairs who chose
    the same reply."""
    agreeing = pairs = 0
    for task in Task.objects.filter(project=project):
        votes = Counter(Annotation.objects.filter(task=task).values_list("choice", flat=True))
        n = sum(votes.values())
        if n >= 2:
            pairs += n * (n - 1) // 2
            agreeing += sum(c * (c - 1) // 2 for c in votes.values())
    return agreeing / pairs if pairs else None


def test_complete_disagreement_is_zero_on_the_card(make_project, labeler_in):
    project = make_project(overlap=2)
    add_tasks(project, prompts=3)
    one, two = labeler_in(project, "l1"), labeler_in(project, "l2")
    tasks = list(Task.objects.filter(project=project))
    Annotation.objects.bulk_create(
        [Annotation(task=t, labeler=one, choice="a") for t in tasks]
        + [Annotation(task=t, labeler=two, choice="b") for t in tasks]
    )
    export = _export(project)
    manifest = json.loads((Path(export.path) / "manifest.json").read_text(encoding="utf-8"))
    assert _independent_agreement(project) == 0.0
    assert manifest["agreement"]["pairwise_agreement"] == 0.0
    assert manifest["agreement"]["comparisons_with_2plus_votes"] == 3
    line = _card_agreement(export)
    assert line.startswith("| pairwise agreement | 0.0 over 3 comparisons"), line


def test_no_comparison_with_two_votes_is_n_a_on_the_card(make_project, labeler_in):
    project = make_project(overlap=1)
    add_tasks(project, prompts=2)
    one = labeler_in(project, "l1")
    Annotation.objects.bulk_create(
        [Annotation(task=t, labeler=one, choice="a") for t in Task.objects.filter(project=project)]
    )
    export = _export(project)
    assert export.manifest["agreement"]["pairwise_agreement"] is None
    assert _card_agreement(export).startswith("| pairwise agreement | n/a over 0 comparisons")
