"""Penetration probe (psec): the page that queues an AI judge job (paid model calls) is limited
like its API twin (``JudgeRunApi``, scope "jobs"); without it the page was a way around the API's
limit."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from annotate.models import Judge
from generation.models import ModelEndpoint
from tests import test_rate_limits
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


tight = test_rate_limits.tight  # rates of 2/min for every scope


@pytest.fixture
def judged(make_project, labeler_in):
    project = make_project()
    add_tasks(project, prompts=2)
    researcher = labeler_in(project, role="researcher")
    endpoint = ModelEndpoint.objects.create(
        name="psec-judge-ep", backend="openai", model="m", project=project
    )
    judge = Judge.objects.create(project=project, name="psec-judge", endpoint=endpoint, user=researcher)
    return project, researcher, judge


def test_the_judge_run_page_is_limited_like_the_api(tight, judged):
    project, researcher, judge = judged
    client = APIClient()
    client.force_login(researcher)
    url = f"/projects/{project.slug}/judges/{judge.pk}/run/"
    codes = [client.post(url, {"limit": 1}).status_code for _ in range(3)]
    assert codes[2] == 429 and 429 not in codes[:2], codes


def test_the_judge_run_api_is_limited(tight, judged):
    """The control: the API twin already was."""
    project, researcher, judge = judged
    client = APIClient()
    client.force_authenticate(researcher)
    url = f"/api/v1/projects/{project.slug}/judges/{judge.pk}/jobs/"
    codes = [client.post(url, {"limit": 1}, format="json").status_code for _ in range(3)]
    assert codes[2] == 429 and 429 not in codes[:2], codes
