"""Probe: gold lines of a ranking project. A gold ranking must rank at least two responses by
their indices (integers); anything else is a line error naming ``gold``, nothing written."""

from __future__ import annotations

import io
import json

import pytest
from django.urls import reverse

from annotate.models import Candidate, Prompt, Task, TaskKind
from annotate.services.imports import ImportFailed, prompts_import

pytestmark = pytest.mark.django_db

GOOD = {"id": "good", "prompt": "Fine", "candidates": ["a", "b", "c"], "gold": [[2], [0, 1]]}


def _file(*lines) -> io.BytesIO:
    return io.BytesIO(b"".join(json.dumps(line).encode() + b"\n" for line in lines))


@pytest.mark.parametrize(
    "line",
    [
        {"prompt": "x", "candidates": [], "gold": []},
        {"prompt": "x", "candidates": ["a"], "gold": [[0]]},
        {"prompt": "x", "candidates": ["a"], "gold": [0]},
        {"prompt": "x", "candidates": ["a", "b"], "gold": [[True], [False]]},
        {"prompt": "x", "candidates": ["a", "b"], "gold": [1, False]},
    ],
    ids=["no-candidates", "one-candidate", "one-candidate-flat", "bool-indices", "bool-index"],
)
def test_a_gold_ranking_of_fewer_than_two_responses_or_of_booleans_is_a_line_error(make_project, line):
    """Before: each was imported as a gold task: with no candidate (a labeler's next task then
    answered 409 "Another request of yours claimed a task at the same moment; try again", every
    time), with one response to "rank", or with true/false read as the indices 1/0."""
    project = make_project(kind=TaskKind.RANKING, allow_rank_ties=True)  # GOOD ties two responses
    with pytest.raises(ImportFailed) as exc:
        prompts_import(project=project, stream=_file(GOOD, line))
    assert [(e.line, e.field) for e in exc.value.report.errors] == [(2, "gold")]
    assert "gold" in exc.value.report.errors[0].message
    assert not Prompt.objects.filter(project=project).exists()
    assert not Candidate.objects.filter(prompt__project=project).exists()
    assert not Task.objects.filter(project=project).exists()


def test_a_valid_gold_ranking_still_imports_and_is_served(make_project, labeler_in, client):
    project = make_project(kind=TaskKind.RANKING, allow_rank_ties=True)  # GOOD ties two responses
    report = prompts_import(project=project, stream=_file(GOOD, {**GOOD, "id": "flat", "gold": [1, 2, 0]}))
    assert (report.prompts, report.tasks) == (2, 2)
    rankings = sorted(len(t.gold_ranking) for t in Task.objects.filter(project=project, is_gold=True))
    assert rankings == [2, 3]
    client.force_login(labeler_in(project))
    resp = client.post(
        reverse("annotate:label_next", args=[project.slug]), "{}", content_type="application/json"
    )
    assert resp.status_code == 200 and resp.json()["state"] == "task"
