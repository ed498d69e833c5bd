"""A gold line must be a label the project's labelers can give.

Before: a gold "tie" was imported into an A/B project without ties, and a gold ranking with a tie
into a ranking project without rank ties, so no labeler could ever match it (their gold accuracy on
it was 0 whatever they did); and a ranking gold line with more candidates than the project ranks
(5 in a K=3 project) made a gold task of 5 responses, where every other task has 3. Now each is a
line error naming ``gold``; nothing is imported."""

from __future__ import annotations

import pytest

from annotate.models import Prompt, Task, TaskKind
from annotate.services.imports import ImportFailed, prompts_import
from tests.annotate.test_imports import _jsonl

pytestmark = pytest.mark.django_db


def _refused(project, row, words):
    with pytest.raises(ImportFailed) as exc:
        prompts_import(project=project, stream=_jsonl([row]))
    (error,) = exc.value.report.errors
    assert error.line == 1 and error.field == "gold" and words in error.message, error
    assert not Prompt.objects.filter(project=project).exists()


def test_a_gold_tie_needs_ties(make_project):
    row = {"id": "g", "prompt": "?", "candidates": ["x", "y"], "gold": "tie"}
    _refused(make_project(allow_tie=False), row, "ties")
    allowed = make_project(allow_tie=True)
    prompts_import(project=allowed, stream=_jsonl([row]))
    assert Task.objects.get(project=allowed).gold_choice == "tie"


def test_a_tied_gold_ranking_needs_rank_ties(make_project):
    row = {"id": "g", "prompt": "?", "candidates": ["x", "y", "z"], "gold": [[0, 1], [2]]}
    _refused(make_project(kind=TaskKind.RANKING, ranking_k=3, allow_rank_ties=False), row, "ties")
    allowed = make_project(kind=TaskKind.RANKING, ranking_k=3, allow_rank_ties=True)
    prompts_import(project=allowed, stream=_jsonl([row]))
    assert Task.objects.get(project=allowed).is_gold


def test_a_gold_ranking_has_at_most_k_candidates(make_project):
    project = make_project(kind=TaskKind.RANKING, ranking_k=3, allow_rank_ties=False)
    row = {"id": "g", "prompt": "?", "candidates": list("abcde"), "gold": [[4], [3], [2], [1], [0]]}
    _refused(project, row, "ranks 3")
    row = {"id": "g", "prompt": "?", "candidates": list("abc"), "gold": [[2], [1], [0]]}
    prompts_import(project=project, stream=_jsonl([row]))
    assert Task.objects.get(project=project).slots.count() == 3
