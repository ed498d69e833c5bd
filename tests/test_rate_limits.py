"""Rate limits on the costly writes: labeling submits, imports, exports, generation jobs, training runs
— on the API (writes only; listing is never limited) and on the pages."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

pytestmark = pytest.mark.django_db


@pytest.fixture
def tight(monkeypatch):
    cache.clear()
    rates = {scope: "2/min" for scope in ("claim", "submit", "export", "jobs", "runs", "import")}
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", rates)
    from annotate import throttles

    monkeypatch.setattr(throttles._PageThrottle, "THROTTLE_RATES", rates)
    yield
    cache.clear()


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/projects/{slug}/exports/",
        "/api/v1/projects/{slug}/generation/jobs/",
        "/api/v1/projects/{slug}/runs/",
        "/api/v1/projects/{slug}/imports/",
    ],
)
def test_api_writes_are_limited_and_reads_are_not(tight, make_project, labeler_in, path):
    project = make_project()
    researcher = labeler_in(project, role="researcher")
    client = APIClient()
    client.force_authenticate(researcher)
    url = path.format(slug=project.slug)
    codes = [client.post(url, {}, format="json").status_code for _ in range(3)]
    assert codes[:2] != [429, 429] and codes[2] == 429, codes
    assert "Retry-After" in client.post(url, {}, format="json").headers
    assert all(client.get(url).status_code != 429 for _ in range(4))


@pytest.mark.parametrize(
    "path",
    [
        "/training/{slug}/exports/",
        "/training/{slug}/runs/",
        "/generation/{slug}/jobs/new/",
        "/projects/{slug}/manage/import/",
    ],
)
def test_page_writes_are_limited(tight, make_project, labeler_in, path, client):
    project = make_project()
    user = labeler_in(project, role="researcher")
    from annotate.services.projects import membership_add

    membership_add(project=project, user=user, role="manager")
    client.force_login(user)
    url = path.format(slug=project.slug)
    codes = [client.post(url, {}).status_code for _ in range(3)]
    assert codes[2] == 429 and 429 not in codes[:2], codes
    assert client.get(url).status_code != 429


def test_labeling_page_submit_is_limited(tight, make_project, labeler_in, client):
    project = make_project()
    alice = labeler_in(project)
    client.force_login(alice)
    url = f"/projects/{project.slug}/label/999999/submit/"
    codes = [client.post(url, {}, content_type="application/json").status_code for _ in range(3)]
    assert codes[2] == 429 and 429 not in codes[:2], codes
    assert client.post(url, {}, content_type="application/json").json()["error"] == "throttled"
