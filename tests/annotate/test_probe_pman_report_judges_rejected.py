"""The report's "AI judges vs humans" block leaves out the judgments a manager rejected in review.

Before: the block read every human choice, rejected ones included, while the rest of the report
counts ``counted_judgments`` (people's, not rejected). A labeler whose every judgment was rejected
still stood in the judge's per-labeler table, and the human-vs-majority figure compared the others
with the rejected votes: two labelers who agree and a rejected dissenter read 0.0 over 2 labels
instead of 1.0 over 4. The figures here are recomputed from the raw rows.
"""

from __future__ import annotations

from collections import Counter

import pytest

from annotate.models import Annotation, AnnotationSource, ReviewVerdict
from annotate.services.reports import report_build
from annotate.services.review import annotation_review
from tests.annotate import test_judges

pytestmark = pytest.mark.django_db
# the judge tests' project with a finished job of a fake judge, and that judge's server
fake_server, judged = test_judges.fake_server, test_judges.judged


def _human_vs_majority(project) -> tuple[int, float | None]:
    """Each counted human label against the unique majority of the other counted humans' labels."""
    per_task: dict[int, dict[int, str]] = {}
    rows = (
        Annotation.objects.filter(task__project=project, choice__isnull=False, flagged=False)
        .exclude(source=AnnotationSource.JUDGE)
        .exclude(review__verdict=ReviewVerdict.REJECTED)
    )
    for task_id, labeler_id, choice in rows.values_list("task_id", "labeler_id", "choice"):
        per_task.setdefault(task_id, {})[labeler_id] = choice
    hits = []
    for per in per_task.values():
        for labeler, choice in per.items():
            top = Counter(c for other, c in per.items() if other != labeler).most_common(2)
            if top and not (len(top) == 2 and top[0][1] == top[1][1]):
                hits.append(int(top[0][0] == choice))
    return len(hits), (round(sum(hits) / len(hits), 4) if hits else None)


def test_rejected_judgments_leave_the_judges_block(judged, labeler_in):
    project, _judge, _job, tasks = judged
    manager = labeler_in(project, "reviewer", role="manager")
    alice, bob, carol = (labeler_in(project, name) for name in ("alice", "bob", "carol"))
    for name in ("a_much_better", "b_much_better"):
        for user, choice in ((alice, "a"), (bob, "a"), (carol, "b")):
            ann = Annotation.objects.create(task=tasks[name], labeler=user, choice=choice)
            if user is carol:
                annotation_review(
                    actor=manager,
                    project=project,
                    annotation_id=ann.pk,
                    verdict="rejected",
                    reason="careless",
                )

    block = report_build(project, bootstrap=20)["judges"]
    n, agreement = _human_vs_majority(project)
    assert (n, agreement) == (4, 1.0)
    assert (block["human_vs_majority"]["n"], block["human_vs_majority"]["agreement"]) == (n, agreement)
    (row,) = block["judges"]
    assert {r["username"] for r in row["vs_labelers"]} == {"alice", "bob"}
