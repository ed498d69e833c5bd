"""'Only tasks not judged yet' skips the tasks a queued or running job of the same judge will judge:
pressing "Run judge" twice no longer judges (and bills) the same tasks twice."""

from __future__ import annotations

import pytest

from annotate.errors import InvalidInput
from annotate.judges.services import judge_create, judge_job_cancel, judge_job_create
from core.jobs import JobState
from generation.services import endpoint_create
from tests.annotate.test_judges import make_pairs

pytestmark = pytest.mark.django_db

PAIRS = {f"q{i}": (f"Answer q={i + 2}", "Answer q=1") for i in range(5)}


@pytest.fixture
def judge(make_project):
    project = make_project()
    make_pairs(project, PAIRS)
    endpoint = endpoint_create(
        name="ep-overlap", backend="openai", model="fake-judge", config={"base_url": "http://judge.test/v1"}
    )
    return judge_create(project=project, name="j", endpoint=endpoint)


def test_a_second_run_skips_the_tasks_a_queued_job_will_judge(judge):
    first = judge_job_create(judge=judge, only_unjudged=True, limit=3)
    second = judge_job_create(judge=judge, only_unjudged=True)
    assert len(first.task_ids) == 3
    assert len(second.task_ids) == 2 and not set(first.task_ids) & set(second.task_ids)
    with pytest.raises(InvalidInput, match=r"already judged, or is judging \(job \d+, job \d+\), every task"):
        judge_job_create(judge=judge, only_unjudged=True)


def test_a_running_job_counts_and_a_finished_or_cancelled_one_does_not(judge):
    first = judge_job_create(judge=judge, only_unjudged=True)
    type(first).objects.filter(pk=first.pk).update(state=JobState.RUNNING)
    with pytest.raises(InvalidInput, match="is judging"):
        judge_job_create(judge=judge, only_unjudged=True)
    judge_job_cancel(job=first)  # it judged nothing: every task is to do again
    again = judge_job_create(judge=judge, only_unjudged=True)
    assert sorted(again.task_ids) == sorted(first.task_ids)


def test_an_explicit_rerun_of_every_task_is_still_taken(judge):
    first = judge_job_create(judge=judge, only_unjudged=True)
    everything = judge_job_create(judge=judge)  # asked for: all tasks, billed again
    assert sorted(everything.task_ids) == sorted(first.task_ids)
