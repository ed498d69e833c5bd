"""The new-job form on the generation page, submitted as a browser submits it: the sampling fields a
researcher leaves as the page shows them must not override the endpoint's own default_sampling
(shown beside the endpoint on the same page) with values of the form's own."""

from html.parser import HTMLParser

import pytest
from django.test import Client

from generation import services
from generation.models import GenerationJob
from tests.generation.conftest import add_prompts

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.setattr("core.outbox.send_task", lambda name, args: None)


class _JobForm(HTMLParser):
    """The values a browser submits for the new-job form's text/number inputs, as the page renders them."""

    def __init__(self, action: str) -> None:
        super().__init__()
        self.action, self.inside, self.values = action, False, {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.inside = attrs.get("action") == self.action
        elif self.inside and tag == "input" and attrs.get("type") in ("number", "text"):
            self.values[attrs["name"]] = attrs.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False


def _job_as_the_page_shows_it(project, researcher, endpoint, capture):
    """Post the new-job form with the values the page renders, choosing ``endpoint``; the job's
    sampling as its batches run with ``endpoint``."""
    add_prompts(project, 2)
    client = Client()
    client.force_login(researcher)
    action = f"/generation/{project.slug}/jobs/new/"
    page = client.get(f"/generation/{project.slug}/")
    assert page.status_code == 200
    form = _JobForm(action)
    form.feed(page.content.decode())
    assert {"temperature", "top_p", "max_new_tokens"} <= set(form.values)
    posted = {
        **form.values,
        "endpoints": [endpoint.pk],
        "k": 2,
        "filter_mode": "all",
        "task_mode": "all_pairs",
    }
    with capture(execute=True):
        response = client.post(action, posted)
    assert response.status_code == 302, response.content.decode()[:2000]
    return services.sampling_for(job=GenerationJob.objects.get(), endpoint=endpoint)


def test_a_job_submitted_as_the_page_shows_it_samples_with_the_endpoints_defaults(
    research_project, researcher, django_capture_on_commit_callbacks
):
    defaults = {"temperature": 0.3, "top_p": 0.9, "max_new_tokens": 64}
    endpoint = services.endpoint_create(
        name="tuned", backend="transformers", model="/models/tiny", project=research_project,
        default_sampling=defaults,
    )  # fmt: skip
    params = _job_as_the_page_shows_it(
        research_project, researcher, endpoint, django_capture_on_commit_callbacks
    )
    assert (params.temperature, params.top_p, params.max_new_tokens) == (0.3, 0.9, 64)


def test_a_job_left_empty_on_an_endpoint_without_defaults_samples_as_before(
    research_project, researcher, django_capture_on_commit_callbacks
):
    endpoint = services.endpoint_create(
        name="plain", backend="transformers", model="/models/tiny", project=research_project
    )
    params = _job_as_the_page_shows_it(
        research_project, researcher, endpoint, django_capture_on_commit_callbacks
    )
    assert (params.temperature, params.top_p, params.top_k, params.max_new_tokens) == (1.0, 1.0, None, 256)
