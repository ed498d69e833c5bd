"""core.jobs: report snapshots, exports, generation jobs and training runs share one lifecycle."""

from __future__ import annotations

import pytest

from annotate.models import ReportSnapshot
from core.jobs import (
    ACTIVE_STATES,
    FINAL_STATES,
    BackgroundJob,
    JobState,
    job_fail,
    job_finish,
    job_status_payload,
)
from generation.models import GenerationJob
from training.models import Export, TrainingRun

pytestmark = pytest.mark.django_db

COMMON = {"id", "state", "active", "finished", "error", "started_at", "finished_at"}


def test_every_background_job_model_uses_the_lifecycle():
    for model in (ReportSnapshot, Export, GenerationJob, TrainingRun):
        assert issubclass(model, BackgroundJob), model
        stored = {c for c, _ in model._meta.get_field("state").choices}
        assert {model.stored_state(s) for s in (JobState.QUEUED, JobState.DONE, JobState.FAILED)} <= stored


@pytest.fixture
def one_job_of_each(make_project):
    """A report snapshot, an export, a generation job and a training run, all queued."""
    project = make_project()
    return (
        ReportSnapshot.objects.create(project=project),
        Export.objects.create(project=project, version=1, format="trl"),
        GenerationJob.objects.create(project=project),
        TrainingRun.objects.create(project=project, kind="ppo", base_model="tiny"),
    )


def test_a_failure_is_recorded_the_same_way_on_each_kind(one_job_of_each):
    snapshot, _export, _job, run = one_job_of_each
    for obj in one_job_of_each:
        assert obj.job_active and not obj.job_finished
        job_fail(obj, ValueError("x" * 30000))
        obj.refresh_from_db()
        assert obj.job_finished and not obj.job_active
        assert obj.lifecycle_state(obj.state) == JobState.FAILED
        assert obj.error.startswith("ValueError: x") and len(obj.error) == obj.JOB_ERROR_CHARS
        assert getattr(obj, obj.JOB_FINISHED_FIELD) is not None
    assert snapshot.state == "failed" and run.JOB_ERROR_CHARS == 20000


def test_finish_stores_each_models_own_values_and_extra_columns(make_project):
    project = make_project()
    snapshot = ReportSnapshot.objects.create(project=project)
    job_finish(snapshot, data={"overall": {}}, annotation_count=3)
    snapshot.refresh_from_db()
    assert snapshot.state == ReportSnapshot.State.READY and snapshot.annotation_count == 3
    assert snapshot.computed_at is not None and snapshot.job_finished
    with pytest.raises(ValueError):
        job_finish(snapshot, state=JobState.RUNNING)


def test_a_job_ends_once_on_every_kind(one_job_of_each):
    """The second end of a job (a worker finishing what the sweep or a cancel already ended) changes
    nothing: the first end's state, error and time stand, and the caller is told."""
    for obj in one_job_of_each:
        assert job_fail(obj, "the worker stopped answering") is True
        ended_at = getattr(obj, obj.JOB_FINISHED_FIELD)
        late = type(obj).objects.get(pk=obj.pk)  # what the late worker holds: read before the end
        late.state = late.stored_state(JobState.RUNNING)
        assert job_finish(late) is False
        assert late.lifecycle_state(late.state) == JobState.FAILED  # the instance tells the truth
        obj.refresh_from_db()
        assert obj.lifecycle_state(obj.state) == JobState.FAILED, obj
        assert obj.error == "the worker stopped answering"
        assert getattr(obj, obj.JOB_FINISHED_FIELD) == ended_at
        assert job_fail(obj, "again") is False
        obj.refresh_from_db()
        assert obj.error == "the worker stopped answering"


def test_status_payloads_share_the_common_keys(make_project):
    from generation.selectors import job_status
    from training.selectors import run_status

    project = make_project()
    job = GenerationJob.objects.create(project=project)
    run = TrainingRun.objects.create(project=project, kind="ppo", base_model="tiny")
    assert set(job_status_payload(job)) == COMMON
    assert set(job_status(job=job)) >= COMMON and set(run_status(run=run)) >= COMMON
    assert run_status(run=run)["active"] and not job_status(job=job)["finished"]
    assert set(ACTIVE_STATES).isdisjoint(FINAL_STATES)


def test_an_ended_job_is_reopened_once_and_a_cancelled_or_active_one_never(one_job_of_each):
    from core.jobs import job_reopen

    for obj in one_job_of_each:
        assert job_reopen(obj) is False  # queued: nothing to reopen
        job_fail(obj, "server down")
        assert job_reopen(obj) is True
        obj.refresh_from_db()
        assert obj.lifecycle_state(obj.state) == JobState.QUEUED and obj.error == ""
        assert getattr(obj, obj.JOB_FINISHED_FIELD) is None
    run = one_job_of_each[-1]
    job_finish(run, state=JobState.CANCELLED)
    assert job_reopen(run) is False and run.state == JobState.CANCELLED


def test_every_job_model_locks_its_own_keys():
    from annotate.models import JudgeJob
    from core.jobs import _advisory_key
    from generation.models import GenerationBatch

    models = [JudgeJob, GenerationBatch, GenerationJob, Export, TrainingRun, ReportSnapshot]
    firsts = {_advisory_key(m, 1) for m in models}
    assert len(firsts) == len(models)
    assert all(0 < key[0] < 2**63 for key in firsts)


@pytest.mark.postgres(reason="the one-runner lock is a PostgreSQL advisory lock")
def test_a_job_beyond_32_bits_of_ids_is_not_taken_by_job_one():
    """Two 32-bit keys gave job 2**32 + 1 the key of job 1: while job 1 ran, a worker would leave
    job 2**32 + 1 alone as if another ran it."""
    from annotate.models import JudgeJob
    from core.jobs import run_alone
    from tests.races import another_worker_runs

    with another_worker_runs(JudgeJob, 1):
        with run_alone(JudgeJob, 1) as alone:
            assert not alone
        with run_alone(JudgeJob, 2**32 + 1) as alone:
            assert alone
        with run_alone(JudgeJob, 2**47 - 1) as alone:
            assert alone
