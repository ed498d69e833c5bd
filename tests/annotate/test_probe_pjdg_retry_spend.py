"""A judge job's tokens and cost include the answers it was billed for and then judged again.

A pair is judged twice (positions swapped). When one ordering's request failed transiently and the
other was answered, the task's suggestion is a failure that holds the answered half's tokens and
cost; the job forgets that suggestion to judge the task again (its extra pass, or "retry failed").

Before: forgetting it deleted that spend from the job's totals. One task, one 503: the server
answered three requests (11 prompt and 7 completion tokens each), the job said 22 and 14, and its
cost was two answers' instead of three. The expected figures are counted from the requests the
fake server answered.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from annotate.judges.services import judge_job_retry_failed, judge_job_run
from annotate.models import JudgeJob
from core.jobs import JobState
from tests.annotate import judge_fakesrv as fakesrv
from tests.annotate.test_judges_defects import (  # noqa: F401 (no_retry_wait: a fixture)
    PAIRS,
    come_back,
    make_judge_job,
    no_retry_wait,
    prefers_x,
    routing_project,
)

pytestmark = pytest.mark.django_db
PROMPT, COMPLETION = 11, 7  # fakesrv.completion's usage per answer
PRICE = (Decimal("0.5"), Decimal("1.0"))  # make_judge's prices per 1,000 tokens


def counting(behaviour, state):
    def fails(handler, body):
        state["failed"] += 1
        behaviour(handler, body)

    return fails


def assert_billed(job: JudgeJob, n: int) -> None:
    assert (job.prompt_tokens, job.completion_tokens) == (PROMPT * n, COMPLETION * n)
    assert job.cost == (PRICE[0] * PROMPT * n + PRICE[1] * COMPLETION * n) / 1000


def test_the_extra_pass_keeps_the_spend_of_the_half_it_judges_again(make_project, servers, no_retry_wait):  # noqa: F811
    project = routing_project(make_project, {"t0": PAIRS["t0"]})
    tally = {"failed": 0}
    url, state = servers(script=[counting(fakesrv.down, tally)], default=fakesrv.answering(prefers_x))
    job = judge_job_run(job_id=make_judge_job(project, url), chunk=1)
    assert job.state == JobState.RUNNING and job.retry_units == 1
    job = come_back(job, chunk=1)
    assert job.state == JobState.DONE and tally["failed"] == 1
    assert len(state["requests"]) == 4
    assert_billed(job, len(state["requests"]) - tally["failed"])


def test_retry_failed_keeps_the_spend_of_the_half_it_judges_again(make_project, servers, no_retry_wait):  # noqa: F811
    project = routing_project(make_project, {"t0": PAIRS["t0"]})
    tally = {"failed": 0}
    url, state = servers(
        script=[counting(fakesrv.down, tally), counting(fakesrv.down, tally), counting(fakesrv.down, tally)],
        default=fakesrv.answering(prefers_x),
    )
    job = judge_job_run(job_id=make_judge_job(project, url), chunk=1)  # both halves fail
    job = come_back(job, chunk=1)  # one half fails: the job ends with the task failed, half billed
    assert job.state == JobState.FAILED and job.failed_units == 1
    job = judge_job_run(job_id=judge_job_retry_failed(job=job).pk, chunk=1)
    assert job.state == JobState.DONE and tally["failed"] == 3
    assert_billed(job, len(state["requests"]) - tally["failed"])
