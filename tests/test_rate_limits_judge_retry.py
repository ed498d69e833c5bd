"""A judge job's retry is rate limited like the judge run it repeats (scope "jobs"), on the API and
on the page.

Before: running a judge was limited (each job calls a paid model), but "retry the failed tasks",
which queues the same paid calls again, was not: a script could queue retries without bound. Now
the retry beyond the rate answers 429 with Retry-After and a message, and queues nothing."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotate.models_judges import JudgeJob
from annotate.services.projects import membership_add
from tests.annotate.test_judges_defects import make_judge
from tests.conftest import bearer
from tests.test_rate_limits import tight  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def failed_job(make_project, labeler_in):
    project = make_project()
    manager = labeler_in(project, "boss", role="manager")
    membership_add(project=project, user=manager, role="researcher")
    judge = make_judge(project, "http://judge.example:8000/v1")
    job = JudgeJob.objects.create(project=project, judge=judge, rubric="r", state="failed")
    return project, manager, job


def test_the_api_retry_is_limited(tight, failed_job):  # noqa: F811
    project, manager, job = failed_job
    client = bearer(manager)
    url = f"/api/v1/projects/{project.slug}/judge-jobs/{job.pk}/retry/"
    codes = [client.post(url, {}, format="json").status_code for _ in range(3)]
    assert 429 not in codes[:2] and codes[2] == 429, codes
    resp = client.post(url, {}, format="json")
    assert resp.status_code == 429 and "Retry-After" in resp.headers
    assert client.get(f"/api/v1/projects/{project.slug}/judge-jobs/{job.pk}/").status_code == 200


def test_the_page_retry_is_limited(tight, failed_job, client):  # noqa: F811
    project, manager, job = failed_job
    client.force_login(manager)
    url = reverse("annotate:judge_job_retry", args=[project.slug, job.pk])
    codes = [client.post(url).status_code for _ in range(3)]
    assert 429 not in codes[:2] and codes[2] == 429, codes
    resp = client.post(url)
    assert "Too many requests" in resp.content.decode() and "Retry-After" in resp.headers
