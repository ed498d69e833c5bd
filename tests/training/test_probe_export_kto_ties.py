"""Probe: a KTO (trl_unpaired) export with ties kept. KTO rows cannot hold a tie (a "both bad"
verdict becomes two undesirable rows); the tie must then be counted among the dropped judgments, as
every other format counts what it cannot write, so the manifest and the dataset card account for
every judgment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotate.models import Annotation, Task
from tests.conftest import add_tasks
from training.services.exports import export_create, export_run

pytestmark = pytest.mark.django_db


def test_kto_with_ties_kept_counts_the_tie_it_cannot_write(make_project, labeler_in):
    """Before: the tie vanished: no row, and ``dropped`` was {} (the card said "dropped: none")."""
    project = make_project(overlap=3)
    add_tasks(project, prompts=2)
    t1, t2 = Task.objects.filter(project=project).order_by("id")
    u1, u2, u3 = (labeler_in(project, f"k{i}") for i in (1, 2, 3))
    Annotation.objects.create(task=t1, labeler=u1, choice="a")
    Annotation.objects.create(task=t1, labeler=u2, choice="tie")
    Annotation.objects.create(task=t2, labeler=u1, choice="both_bad")
    Annotation.objects.create(task=t2, labeler=u3, choice="tie")
    export = export_create(
        project=project, format="trl_unpaired", options={"test_size": 0, "ties": "keep"}, enqueue=False
    )
    export_run(export_id=export.pk)
    export.refresh_from_db()
    lines = (Path(export.path) / "train.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    # t1: a > b (2 rows); t2: both bad (2 undesirable rows); the two ties have none
    assert sorted(r["label"] for r in rows) == [False, False, False, True]
    counts = export.manifest["counts"]
    assert counts["rows"] == export.row_count == 4
    assert counts["judgments"] == 4
    assert counts["dropped"] == {"tie": 2}
    card = (Path(export.path) / "README.md").read_text(encoding="utf-8")
    assert "| dropped | tie: 2 |" in card

    # the same with ties dropped: the tie and the both-bad verdict are dropped, as before
    export = export_create(project=project, format="trl_unpaired", options={"test_size": 0}, enqueue=False)
    export_run(export_id=export.pk)
    export.refresh_from_db()
    assert export.manifest["counts"]["dropped"] == {"both_bad": 1, "tie": 2}
    assert export.row_count == 2
