"""The report's "AI judges vs humans" block reads the same answer of a judge that routing and
pre-annotation read: its newest answer, a later failure leaving it standing
(``services.latest_suggestions``).

Before: the block took each judge's newest suggestion per task, failed ones included. A judge
re-run while its server was down (a failed suggestion in a newer job) turned the tasks it had
answered into "uncertain": they left the agreement figures although their answer still routed the
task and was written as the judge's label.
"""

from __future__ import annotations

import pytest

from annotate.judges.agreement import judge_agreement
from annotate.judges.services import judge_job_create, latest_suggestions
from annotate.models import Annotation, JudgeSuggestion
from annotate.models_judges import SuggestionStatus
from tests.annotate import test_judges

pytestmark = pytest.mark.django_db
fake_server, judged = test_judges.fake_server, test_judges.judged


def test_a_failed_rerun_leaves_the_judges_answer_in_the_agreement(judged, labeler_in):
    project, judge, job, tasks = judged
    task = tasks["a_much_better"]
    answer = JudgeSuggestion.objects.get(job=job, task=task)
    assert (answer.status, answer.choice) == (SuggestionStatus.OK, "a")
    for user in (labeler_in(project), labeler_in(project)):
        Annotation.objects.create(task=task, labeler=user, choice="a")
    before = judge_agreement(project, bootstrap=0)["judges"][0]
    assert (before["consistent"], before["uncertain"], before["vs_majority"]["n"]) == (1, 0, 1)

    # the judge judged that task again while its server was down
    rerun = judge_job_create(judge=judge, task_ids=[task.pk])
    JudgeSuggestion.objects.create(
        job=rerun,
        judge=judge,
        task=task,
        status=SuggestionStatus.FAILED,
        transient=True,
        error="overloaded",
        endpoint=judge.endpoint,
        rubric_version=rerun.rubric_version,
        sampling=rerun.sampling,
    )
    # routing and pre-annotation still read the earlier answer
    (kept,) = latest_suggestions(project=project, task_ids=[task.pk])[task.pk]
    assert kept.pk == answer.pk
    after = judge_agreement(project, bootstrap=0)["judges"][0]
    assert (after["consistent"], after["uncertain"]) == (1, 0)
    assert after["vs_majority"]["n"] == 1 and after["vs_majority"]["agreement"] == 1.0
