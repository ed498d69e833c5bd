"""A judge job waiting for its extra pass over transiently failed tasks does not hold its worker:
one real ``celery worker --pool solo`` on the generation queue (Redis, the PostgreSQL test
database) judges a second job while the first waits, then the first job's message comes back after
``TRANSIENT_RETRY_DELAYS_S`` and it ends, each task judged once more and no more."""

from __future__ import annotations

import pytest

from annotate.judges.services import TRANSIENT_RETRY_DELAYS_S, judge_job_create
from annotate.models import JudgeJob
from core.jobs import JobState
from tests.annotate import judge_fakesrv as fakesrv
from tests.annotate.test_judges import make_pairs
from tests.annotate.test_judges_defects import PAIRS, make_judge, prefers_x
from tests.annotate.test_judges_reroute import routed  # noqa: F401 - fixture
from tests.generation.test_worker import (  # noqa: F401 - fixtures
    REAL_WORKER_MARKS,
    _wait,
    postgres_db,
    publish_to_redis,
    redis_broker,
    start_worker,
)

pytestmark = REAL_WORKER_MARKS


@pytest.fixture
def judge_worker(request, monkeypatch):
    """``start_worker``, its processes allowed to call the fake servers on 127.0.0.1."""
    monkeypatch.setenv("PREFHUB_ALLOWED_MODEL_HOSTS", "127.0.0.1")
    return request.getfixturevalue("start_worker")


def _job(pk: int) -> JudgeJob:
    return JudgeJob.objects.get(pk=pk)


@pytest.mark.usefixtures("publish_to_redis")
def test_the_worker_judges_another_job_while_one_waits_for_its_extra_pass(
    make_project, servers, judge_worker
):
    project = make_project()
    make_pairs(project, PAIRS)
    # four tasks, both orderings: the first pass of job A finds the server down, then it is back
    url_a, state_a = servers(script=[fakesrv.down] * 8, default=fakesrv.answering(prefers_x))
    url_b, state_b = servers(default=fakesrv.answering(prefers_x))
    judge_a = make_judge(project, url_a, name="a")
    judge_b = make_judge(project, url_b, name="b")
    worker = judge_worker("judge-worker", pool="solo")
    procs = [worker]

    a = judge_job_create(judge=judge_a)
    a = _wait(lambda: (j := _job(a.pk)).retry_waiting and j, timeout=120, procs=procs, what="job A to wait")
    assert a.retry_units == 4 and len(state_a["requests"]) == 8
    due = a.retry_at

    b = judge_job_create(judge=judge_b)
    b = _wait(lambda: (j := _job(b.pk)).job_finished and j, timeout=60, procs=procs, what="job B to end")
    assert b.state == JobState.DONE and b.done_units == 4
    # judged while A waited: the worker was not held by A's wait
    assert b.finished_at < due and _job(a.pk).retry_waiting

    a = _wait(
        lambda: (j := _job(a.pk)).job_finished and j,
        timeout=TRANSIENT_RETRY_DELAYS_S[0] + 60,
        procs=procs,
        what="job A to come back and end",
    )
    assert a.state == JobState.DONE and (a.done_units, a.failed_units) == (4, 0), a.error
    assert a.finished_at >= due and a.retry_passes == 1  # not judged again before it was due
    assert len(state_a["requests"]) == 16  # the extra pass judged each task once: no duplicate run
    assert len(state_b["requests"]) == 8
    assert worker.poll() is None


@pytest.mark.usefixtures("publish_to_redis")
def test_the_general_worker_runs_a_managers_reroute(routed, start_worker):  # noqa: F811
    """The re-route's message goes to the default queue, which the platform's general worker reads
    (``run_platform``: ``-Q default,training``): a real worker there re-routes and records it."""
    from annotate.judges.services import reroute_start
    from annotate.models import RerouteJob, RoutingDecision
    from tests.annotate.test_judges_reroute import add_suggestion

    project, judge, manager, tasks = routed
    add_suggestion(judge, tasks["unparsed"], choice="a", strength=3)
    worker = start_worker("general-worker", queue="default,training")
    job = reroute_start(project=project, actor=manager)
    job = _wait(
        lambda: (j := RerouteJob.objects.get(pk=job.pk)).job_finished and j,
        timeout=90,
        procs=[worker],
        what="the re-route to end",
    )
    assert job.state == JobState.DONE and (job.done_units, job.total_units) == (4, 4), job.error
    assert job.outcome["human_to_judge"] == 1
    assert RoutingDecision.objects.get(task=tasks["unparsed"]).reason == "confident"
    assert worker.poll() is None
