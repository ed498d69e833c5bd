"""The report and the leaderboard page count the same judgments: people's, not rejected in review.
Before, the report's agreement figures, labelers table and leaderboard kept rejected judgments
(only its reliability block dropped them), and the leaderboard page counted AI judges' labels as
votes; the two leaderboards of one project disagreed."""

from __future__ import annotations

import pytest

from annotate.models import Annotation, AnnotationSource
from annotate.selectors_leaderboard import leaderboard_votes
from annotate.services import reports
from annotate.services.review import annotation_review
from tests.annotate.test_leaderboard_page import seed_arena

pytestmark = pytest.mark.django_db


@pytest.fixture
def arena(make_project, labeler_in, make_user):
    project = make_project()
    labelers = [labeler_in(project) for _ in range(3)]
    anns = seed_arena(project, labelers)
    manager = labeler_in(project, "boss", role="manager")
    rejected = [a for a in anns if a.labeler_id == labelers[0].pk][:10]
    for ann in rejected:
        annotation_review(
            actor=manager, project=project, annotation_id=ann.pk, verdict="rejected", reason="careless"
        )
    judge_user = make_user("judge-bot")
    task = anns[-1].task
    Annotation.objects.create(task=task, labeler=judge_user, choice="a", source=AnnotationSource.JUDGE)
    return project, anns, rejected, labelers


def test_the_report_leaves_rejected_judgments_out(arena):
    project, anns, rejected, labelers = arena
    report = reports.report_build(project, bootstrap=10)
    assert report["totals"]["annotations"] == len(anns) - len(rejected)
    by_id = {row["labeler_id"]: row for row in report["labelers"]}
    assert (
        by_id[labelers[0].pk]["annotations"] == len([a for a in anns if a.labeler_id == labelers[0].pk]) - 10
    )


def test_both_leaderboards_count_the_same_votes(arena):
    project, anns, rejected, _ = arena
    page_votes = len(leaderboard_votes(project=project).outcome)
    assert page_votes == len(anns) - len(rejected)  # no judge vote, no rejected one
    report = reports.report_build(project, bootstrap=10)
    games = sum(row["games"] for row in report["leaderboard"]["rows"]) // 2
    assert games == page_votes
