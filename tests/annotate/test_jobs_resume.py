"""Judge jobs, re-routes and exports whose worker died or was stopped resume
(``core.jobs.jobs_resume_stalled``).

With the embedded (filesystem) broker that ``make run`` uses, a message is gone from the queue
folder once a worker receives it, so a worker killed (or stopped) mid-job took the job's only
message with it: the job showed "running" for ever (a re-route at least offered its button again
after ten minutes). The beat sweep now sends the message of every stalled job again, the way the
generation batches' sweep does; the job's runner resumes it (``run_alone``, only what it has not
committed yet). On Redis the sweep reads the queue lists instead
(``tests/generation/test_redis_lost_messages.py``).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from annotate.judges import services as judge_services
from annotate.models import JudgeJob, JudgeSuggestion, OutboxMessage, RerouteJob
from core.jobs import JobState, jobs_resume_all_stalled, jobs_resume_stalled
from tests.annotate import judge_fakesrv as fakesrv
from tests.annotate.test_judges import make_pairs
from tests.annotate.test_judges_defects import PAIRS, make_judge, prefers_x
from tests.generation.test_worker_pool import filesystem_broker, platform  # noqa: F401 - fixtures
from training.models import Export
from training.services.exports import export_create, export_run

JUDGE_TASK = "generation.judge_job_run"
REROUTE_TASK = "annotate.judge_reroute"
EXPORT_TASK = "training.export_run"


@pytest.fixture
def queue_folder(embedded_queue, settings):
    settings.PREFHUB_ALLOWED_MODEL_HOSTS = ["127.0.0.1"]
    settings.PREFHUB_JOB_STALLED_AFTER_S = 600
    return embedded_queue


def _in_queue(folder, task: str, job_id: int) -> None:
    """A message as kombu's filesystem transport stores it (Celery protocol 2, base64 body)."""
    body = base64.b64encode(json.dumps([[job_id], {}, {}]).encode()).decode()
    payload = {"body": body, "headers": {"task": task, "id": "x"}, "properties": {"body_encoding": "base64"}}
    (folder / f"1_{task}_{job_id}.msg").write_text(json.dumps(payload))


def _sent(task: str) -> list[int]:
    return sorted(m.args[0] for m in OutboxMessage.objects.filter(task_name=task))


@pytest.fixture
def taken_job(db, make_project, queue_folder):
    """``taken_job(state=..., quiet=timedelta)``: a judge job a worker took (its message gone),
    silent for ``quiet``."""

    def _make(*, state=JobState.RUNNING, quiet=timedelta(minutes=11), **fields) -> JudgeJob:
        project = make_project()
        make_pairs(project, PAIRS)
        job = judge_services.judge_job_create(judge=make_judge(project, "http://127.0.0.1:9/v1"))
        OutboxMessage.objects.all().delete()  # sent, and received by the worker that died
        at = timezone.now() - quiet
        values = {"state": state, "created_at": at, "progress_at": at, **fields}
        JudgeJob.objects.filter(pk=job.pk).update(**values)
        job.refresh_from_db()
        return job

    return _make


def test_a_judge_job_whose_worker_died_is_sent_again_once(taken_job):
    job = taken_job()
    assert job.stalled
    assert jobs_resume_all_stalled() == 1
    assert _sent(JUDGE_TASK) == [job.pk]
    # its message waits in the outbox (then in the queue folder): not sent a second time
    assert jobs_resume_all_stalled() == 0
    assert _sent(JUDGE_TASK) == [job.pk]


def test_a_queued_judge_job_whose_message_was_taken_is_sent_again(taken_job):
    job = taken_job(state=JobState.QUEUED, progress_at=None)
    assert jobs_resume_stalled(JudgeJob) == [job.pk]


def test_a_job_with_a_message_waiting_in_the_broker_is_left_to_it(taken_job, queue_folder):
    job = taken_job()
    _in_queue(queue_folder, JUDGE_TASK, job.pk)
    _in_queue(queue_folder, "generation.run_batch", job.pk + 1000)  # another task's message
    assert jobs_resume_stalled(JudgeJob) == []


def test_a_job_that_made_progress_lately_is_left_to_its_worker(taken_job):
    job = taken_job(quiet=timedelta(minutes=9))
    assert not job.stalled
    assert jobs_resume_stalled(JudgeJob) == []


def test_a_job_waiting_for_its_extra_pass_is_not_stalled_before_it_is_due(taken_job):
    soon = timezone.now() + timedelta(minutes=1)
    job = taken_job(retry_at=soon, retry_units=2)
    assert not job.stalled and jobs_resume_stalled(JudgeJob) == []
    # its message (held by a worker until due) died with the worker: once long overdue, sent again
    JudgeJob.objects.filter(pk=job.pk).update(retry_at=timezone.now() - timedelta(minutes=11))
    job.refresh_from_db()
    assert job.stalled and jobs_resume_stalled(JudgeJob) == [job.pk]


@pytest.mark.parametrize("state", [JobState.DONE, JobState.FAILED, JobState.CANCELLED])
def test_an_ended_job_is_never_sent_again(taken_job, state):
    job = taken_job(state=state)
    assert not job.stalled and jobs_resume_stalled(JudgeJob) == []


def test_a_stalled_reroute_is_sent_again(make_project, queue_folder, labeler_in):
    project = make_project()
    old = timezone.now() - timedelta(minutes=11)
    manager = labeler_in(project, role="manager")
    job = RerouteJob.objects.create(project=project, created_by=manager, state=JobState.RUNNING)
    RerouteJob.objects.filter(pk=job.pk).update(created_at=old, progress_at=old)
    assert jobs_resume_all_stalled() == 1
    assert _sent(REROUTE_TASK) == [job.pk] and _sent(JUDGE_TASK) == []


def test_the_job_page_and_the_api_say_a_job_is_stalled(taken_job, client, labeler_in):
    job = taken_job()
    manager = labeler_in(job.project, role="manager")
    client.force_login(manager)
    page = client.get(f"/projects/{job.project.slug}/judges/jobs/{job.pk}/").content.decode()
    assert 'data-field="stalled"' in page and "No progress for 11" in page
    api = client.get(f"/api/v1/projects/{job.project.slug}/judge-jobs/{job.pk}/").json()
    assert api["stalled"] is True and api["state"] == "running"
    JudgeJob.objects.filter(pk=job.pk).update(progress_at=timezone.now())
    page = client.get(f"/projects/{job.project.slug}/judges/jobs/{job.pk}/").content.decode()
    assert 'data-field="stalled"' not in page
    assert client.get(f"/api/v1/projects/{job.project.slug}/judge-jobs/{job.pk}/").json()["stalled"] is False


def test_a_worker_stamps_progress_as_it_claims_and_commits(make_project, servers, monkeypatch):
    project = make_project()
    make_pairs(project, PAIRS)
    url, _state = servers(default=fakesrv.answering(prefers_x))
    job = judge_services.judge_job_create(judge=make_judge(project, url))
    before = timezone.now()
    stamps: list = []
    real = judge_services._write_chunk

    def write(job, suggestions):
        real(job, suggestions)
        stamps.append(JudgeJob.objects.get(pk=job.pk).progress_at)

    monkeypatch.setattr(judge_services, "_write_chunk", write)
    job = judge_services.judge_job_run(job_id=job.pk, chunk=2)
    assert job.state == JobState.DONE and len(stamps) == 2
    assert all(s is not None and s >= before for s in stamps) and stamps == sorted(stamps)


def test_an_export_whose_worker_died_is_sent_again(make_project, queue_folder):
    project = make_project()
    running = export_create(project=project, format="trl", options={}, enqueue=False)
    fresh = export_create(project=project, format="trl", options={}, enqueue=False)
    done = export_create(project=project, format="trl", options={}, enqueue=False)
    old = timezone.now() - timedelta(minutes=11)
    Export.objects.filter(pk=running.pk).update(state="running", created_at=old, progress_at=old)
    Export.objects.filter(pk=fresh.pk).update(state="running", created_at=old, progress_at=timezone.now())
    Export.objects.filter(pk=done.pk).update(state="done", created_at=old)
    assert jobs_resume_all_stalled() == 1
    assert _sent(EXPORT_TASK) == [running.pk]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_running_export_beats_so_a_long_one_is_never_taken_for_dead(make_project, monkeypatch):
    """The worker's export stamps ``progress_at`` every ``heartbeat_s`` from a thread, also through
    a long phase that reports no rows (here: a slow manifest)."""
    from training.services import exports as export_services

    project = make_project()
    export = export_create(project=project, format="trl", options={}, enqueue=False)
    beats: list = []
    real = export_services._write_export

    def slow(export, out, progress):
        for _ in range(3):
            time.sleep(0.2)
            beats.append(Export.objects.get(pk=export.pk).progress_at)
        return real(export, out, progress)

    monkeypatch.setattr(export_services, "_write_export", slow)
    export = export_run(export_id=export.pk, heartbeat_s=0.05)
    assert export.state == "done"
    assert None not in beats and len(set(beats)) == 3  # a new stamp at each look, while it ran


# --- a real generation worker, SIGKILLed mid-job, on the embedded broker ------------------------------


def slow_answer(fn, delay: float):
    def behaviour(handler, body) -> None:
        time.sleep(delay)
        fakesrv.answering(fn)(handler, body)

    return behaviour


@pytest.fixture
def judge_platform(monkeypatch, request):
    """The worker-pool tests' ``platform`` (embedded broker, real processes), its processes allowed to
    call the fake judge server, a job stalled after 3 s and the sweep every second."""
    monkeypatch.setenv("PREFHUB_ALLOWED_MODEL_HOSTS", "127.0.0.1")
    monkeypatch.setenv("PREFHUB_JOB_STALLED_AFTER_S", "3")
    monkeypatch.setenv("PREFHUB_JOB_SWEEP_S", "1")
    return request.getfixturevalue("platform")


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_judge_job_whose_worker_was_killed_finishes_on_the_next_worker(
    make_project, servers, judge_platform
):
    from annotate.management.commands.run_platform import GENERATION_WORKER, beat, general_worker
    from tests.generation.test_worker import _wait

    project = make_project()
    make_pairs(project, PAIRS)
    url, state = servers(default=slow_answer(prefers_x, 1.0))
    judge = make_judge(project, url)
    sweeper = judge_platform("beat", beat(str(judge_platform.var / "celerybeat-schedule")))
    general = judge_platform("general-worker", general_worker(1))
    first = judge_platform("generation-worker-1", GENERATION_WORKER)
    procs = [sweeper, general, first]

    job = judge_services.judge_job_create(judge=judge)
    _wait(lambda: len(state["requests"]) >= 1, timeout=120, procs=procs, what="the judge to be called")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    job.refresh_from_db()
    assert job.state == JobState.RUNNING and not JudgeSuggestion.objects.filter(job=job).exists()

    second = judge_platform("generation-worker-2", GENERATION_WORKER)
    procs.append(second)
    job = _wait(
        lambda: (j := JudgeJob.objects.get(pk=job.pk)).job_finished and j,
        timeout=120,
        procs=procs,
        what="the killed worker's judge job to finish on the next worker",
    )
    assert job.state == JobState.DONE, job.error
    assert (job.done_units, job.failed_units) == (len(PAIRS), 0)
    assert JudgeSuggestion.objects.filter(job=job).count() == len(PAIRS)  # each task once
    assert second.poll() is None and general.poll() is None
