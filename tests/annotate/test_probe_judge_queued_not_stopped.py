# ruff: noqa: F811 - the fixtures are imported from another test module and requested by name
"""A judge job no worker has taken yet is not said to have a worker that stopped.

A queued judge job waits in the generation queue, behind a long generation job say (seen on Redis
with real workers: the message still in the queue, the sweep rightly leaving it). Once it had waited
``PREFHUB_JOB_STALLED_AFTER_S`` its page said "No progress ...: its generation worker stopped",
which no worker had done: none had started it. It now says the job has not started and is waiting
for a generation worker; a running job whose worker went silent still reads as before.
"""

from __future__ import annotations

from core.jobs import JobState
from tests.annotate.test_jobs_resume import queue_folder, taken_job  # noqa: F401


def _page(client, job) -> str:
    return client.get(f"/projects/{job.project.slug}/judges/jobs/{job.pk}/").content.decode()


def test_a_queued_job_waiting_long_is_said_not_started(taken_job, client, labeler_in):
    job = taken_job(state=JobState.QUEUED, progress_at=None)
    client.force_login(labeler_in(job.project, role="manager"))
    page = _page(client, job)
    assert 'data-field="stalled"' in page
    assert "worker stopped" not in page
    assert "Not started after 11" in page and "no generation worker has taken it yet" in page


def test_a_running_job_gone_silent_still_says_its_worker_stopped(taken_job, client, labeler_in):
    job = taken_job()
    client.force_login(labeler_in(job.project, role="manager"))
    page = _page(client, job)
    assert "No progress for 11" in page and "its generation worker stopped" in page
