"""Researchers' generation pages and the REST API: permissions, forms, progress JSON, cancel,
failures shown (escaped), and service errors as 4xx."""

import re

import pytest
from django.test import Client

from annotate.services.projects import membership_add
from generation import services
from generation.models import GenerationBatch, GenerationFailure, GenerationJob, JobState, ModelEndpoint
from tests.generation.conftest import add_prompts


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    """Jobs created through pages and the API are enqueued on commit; record instead of sending."""
    sent = []
    monkeypatch.setattr("core.outbox.send_task", lambda name, args: sent.extend(args))
    return sent


@pytest.fixture
def client_for():
    def _client(user):
        client = Client()
        client.force_login(user)
        return client

    return _client


@pytest.fixture
def endpoint(research_project):
    return services.endpoint_create(
        name="tiny", backend="transformers", model="/models/tiny", project=research_project
    )


def test_pages_need_the_research_capability(research_project, researcher, make_user, client_for):
    url = f"/generation/{research_project.slug}/"
    assert Client().get(url).status_code == 302  # to the login page
    outsider = make_user()
    assert client_for(outsider).get(url).status_code == 404
    labeler = make_user()
    membership_add(project=research_project, user=labeler, role="labeler")
    assert client_for(labeler).get(url).status_code == 403
    manager = make_user()
    membership_add(project=research_project, user=manager, role="manager")
    assert client_for(manager).get(url).status_code == 403  # managers run the project, not models
    response = client_for(researcher).get(url)
    assert response.status_code == 200
    assert b"New job" in response.content and b"Model endpoints" in response.content


def test_create_endpoint_through_the_page(research_project, researcher, client_for, settings, tmp_path):
    settings.PREFHUB_ALLOWED_MODEL_DIRS = [str(tmp_path)]  # a model folder the administrator allowed
    (tmp_path / "m").mkdir()
    client = client_for(researcher)
    url = f"/generation/{research_project.slug}/endpoints/new/"
    response = client.post(
        url,
        {
            "name": "local-tiny",
            "backend": "transformers",
            "model": str(tmp_path / "m"),
            "config": '{"device": "cpu"}',
        },
    )
    assert response.status_code == 302
    endpoint = ModelEndpoint.objects.get(name="local-tiny")
    assert endpoint.project == research_project and endpoint.config == {"device": "cpu"}

    bad_json = client.post(url, {"name": "x", "backend": "transformers", "model": "/m", "config": "{nope"})
    assert bad_json.status_code == 400 and b"Not valid JSON" in bad_json.content
    private = client.post(
        url,
        {"name": "x", "backend": "openai", "model": "m", "config": '{"base_url": "http://169.254.169.254/"}'},
    )
    assert private.status_code == 400 and b"link-local" in private.content
    shared = client.post(url, {"name": "y", "backend": "transformers", "model": "/m", "shared": "on"})
    assert shared.status_code == 400 and b"Only administrators" in shared.content


def test_create_job_through_the_page_and_follow_it(
    research_project, researcher, endpoint, client_for, _no_broker, django_capture_on_commit_callbacks
):
    add_prompts(research_project, 3, tags=["math"])
    client = client_for(researcher)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/generation/{research_project.slug}/jobs/new/",
            {
                "endpoints": [endpoint.pk],
                "k": 2,
                "filter_mode": "tag",
                "tag": "math",
                "task_mode": "all_pairs",
                "temperature": "0.8",
                "max_new_tokens": "32",
                "stop": "END\n\\n\\n",
                "batch_size": 2,
            },
        )
    assert response.status_code == 302
    job = GenerationJob.objects.get()
    assert response["Location"] == f"/generation/{research_project.slug}/jobs/{job.pk}/"
    assert job.total_units == 3 and job.created_by == researcher
    assert job.sampling["stop"] == ["END", "\n\n"] and job.sampling["temperature"] == 0.8
    assert _no_broker == list(
        GenerationBatch.objects.filter(job=job).order_by("index").values_list("pk", flat=True)
    )

    page = client.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert "data-job-status-url" in html and "js/generation.js" in html
    for tag in re.findall(r"<script[^>]*>", html):
        assert "src=" in tag  # the CSP forbids inline scripts
    status = client.get(f"/generation/{research_project.slug}/jobs/{job.pk}/status.json").json()
    assert status["state"] == "queued" and status["total_units"] == 3 and status["finished"] is False


def test_job_form_errors_are_shown(research_project, researcher, endpoint, client_for):
    client = client_for(researcher)
    response = client.post(
        f"/generation/{research_project.slug}/jobs/new/",
        {"endpoints": [endpoint.pk], "k": 2, "filter_mode": "all", "batch_size": 4},
    )
    assert response.status_code == 400 and b"No prompt matches the filter" in response.content
    add_prompts(research_project, 1)
    response = client.post(
        f"/generation/{research_project.slug}/jobs/new/",
        {"endpoints": [endpoint.pk], "k": 2, "filter_mode": "all", "task_mode": "ranking", "batch_size": 4},
    )
    assert response.status_code == 400 and b"ranking project" in response.content


def test_cancel_and_failures_on_the_job_page(research_project, researcher, endpoint, client_for):
    prompts = add_prompts(research_project, 2)
    job = services.job_create(project=research_project, endpoints=[endpoint], k=2, enqueue=False)
    GenerationFailure.objects.create(
        job=job, prompt=prompts[0], endpoint=endpoint, message="<script>alert(1)</script> too long"
    )
    client = client_for(researcher)
    page = client.get(f"/generation/{research_project.slug}/jobs/{job.pk}/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; too long" in page and "<script>alert(1)" not in page
    response = client.post(f"/generation/{research_project.slug}/jobs/{job.pk}/cancel/")
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    again = client.post(f"/generation/{research_project.slug}/jobs/{job.pk}/cancel/", follow=True)
    assert "The job is already cancelled." in [str(m) for m in again.context["messages"]]
    assert client.get(f"/generation/{research_project.slug}/jobs/999999/").status_code == 404


def test_job_of_another_project_is_not_found(research_project, researcher, make_project, client_for):
    other = make_project()
    add_prompts(other, 1)
    e = services.endpoint_create(name="other", backend="transformers", model="/m", project=other)
    job = services.job_create(project=other, endpoints=[e], k=2, enqueue=False)
    client = client_for(researcher)
    assert client.get(f"/generation/{research_project.slug}/jobs/{job.pk}/").status_code == 404
    assert client.get(f"/api/v1/generation/jobs/{job.pk}/").status_code == 404


# --- API --------------------------------------------------------------------------------------


def test_api_endpoints_and_jobs(
    research_project, researcher, endpoint, client_for, _no_broker, django_capture_on_commit_callbacks
):
    add_prompts(research_project, 4)
    client = client_for(researcher)
    base = f"/api/v1/projects/{research_project.slug}/generation"
    listed = client.get(f"{base}/endpoints/").json()["results"]
    assert [e["name"] for e in listed] == ["tiny"]

    created = client.post(
        f"{base}/endpoints/",
        {
            "name": "srv",
            "backend": "openai",
            "model": "tiny",
            "config": {"base_url": "https://api.example.com/v1", "api_key_env": "PREFHUB_KEY_EXAMPLE"},
        },
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["config"]["api_key_env"] == "PREFHUB_KEY_EXAMPLE"

    with django_capture_on_commit_callbacks(execute=True):
        job = client.post(
            f"{base}/jobs/",
            {"endpoints": ["tiny"], "k": 3, "sampling": {"temperature": 0.5, "seed": 9}, "batch_size": 2},
            content_type="application/json",
        )
    assert job.status_code == 201, job.content
    data = job.json()
    assert (
        data["state"] == "queued"
        and data["total_units"] == 4
        and data["sampling"] == {"temperature": 0.5, "seed": 9}
    )
    assert len(_no_broker) == 2

    jobs = client.get(f"{base}/jobs/").json()["results"]
    assert [j["id"] for j in jobs] == [data["id"]]
    detail = client.get(f"/api/v1/generation/jobs/{data['id']}/").json()
    assert detail["failures"] == [] and detail["endpoints"] == ["tiny"]
    cancelled = client.post(f"/api/v1/generation/jobs/{data['id']}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    conflict = client.post(f"/api/v1/generation/jobs/{data['id']}/cancel/")
    assert conflict.status_code == 409 and conflict.json()["error"] == "conflict"


def test_api_errors(research_project, researcher, endpoint, make_user, client_for):
    client = client_for(researcher)
    base = f"/api/v1/projects/{research_project.slug}/generation"
    unknown = client.post(f"{base}/jobs/", {"endpoints": ["nope"], "k": 2}, content_type="application/json")
    assert unknown.status_code == 400 and unknown.json()["field"] == "endpoints"
    no_prompts = client.post(
        f"{base}/jobs/", {"endpoints": ["tiny"], "k": 2}, content_type="application/json"
    )
    assert no_prompts.status_code == 400 and "No prompt" in no_prompts.json()["detail"]
    bad_k = client.post(f"{base}/jobs/", {"endpoints": ["tiny"], "k": 100}, content_type="application/json")
    assert bad_k.status_code == 400 and bad_k.json()["field"] == "k"
    dup = client.post(
        f"{base}/endpoints/",
        {"name": "tiny", "backend": "transformers", "model": "m"},
        content_type="application/json",
    )
    assert dup.status_code == 409
    labeler = make_user()
    membership_add(project=research_project, user=labeler, role="labeler")
    assert client_for(labeler).get(f"{base}/jobs/").status_code == 403
    assert client_for(make_user()).get(f"{base}/jobs/").status_code == 404
    assert Client().get(f"{base}/jobs/").status_code in (401, 403)


def test_job_list_costs_a_fixed_number_of_queries(
    research_project, researcher, endpoint, client_for, django_assert_max_num_queries
):
    add_prompts(research_project, 2)
    for _ in range(6):
        services.job_create(project=research_project, endpoints=[endpoint], k=2, enqueue=False)
    client = client_for(researcher)
    with django_assert_max_num_queries(12):
        jobs = client.get(f"/api/v1/projects/{research_project.slug}/generation/jobs/").json()["results"]
    assert len(jobs) == 6 and all(j["candidates"] == 0 and j["tasks"] == 0 for j in jobs)
    with django_assert_max_num_queries(14):
        assert client.get(f"/generation/{research_project.slug}/").status_code == 200


def test_prompts_may_be_chosen_by_their_imported_ids(
    research_project, researcher, endpoint, client_for, _no_broker
):
    """A researcher knows prompts by the ids of the lines they imported ("q1"); no page shows the
    database's. The page refused them ("whole numbers") and the API said "needs a non-empty list"
    of a non-empty list. Imported ids work on both; an unknown one is named; a number that is no
    imported id is still a database id."""
    prompts = add_prompts(research_project, 4)  # imported ids q0..q3
    client = client_for(researcher)
    response = client.post(
        f"/generation/{research_project.slug}/jobs/new/",
        {"endpoints": [endpoint.pk], "k": 2, "filter_mode": "ids", "ids": "q1, q3", "batch_size": 2},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    job = GenerationJob.objects.get()
    assert job.total_units == 2 and job.prompt_filter == {
        "mode": "ids",
        "ids": [prompts[1].pk, prompts[3].pk],
    }
    response = client.post(
        f"/generation/{research_project.slug}/jobs/new/",
        {"endpoints": [endpoint.pk], "k": 2, "filter_mode": "ids", "ids": "q1 nope", "batch_size": 2},
    )
    assert (
        response.status_code == 400
        and b"No prompt with the id &#x27;nope&#x27; in this project" in response.content
    )

    base = f"/api/v1/projects/{research_project.slug}/generation"
    created = client.post(
        f"{base}/jobs/",
        {"endpoints": ["tiny"], "k": 2, "prompt_filter": {"mode": "ids", "ids": ["q0", prompts[2].pk]}},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["prompt_filter"] == {"mode": "ids", "ids": [prompts[0].pk, prompts[2].pk]}
    refused = client.post(
        f"{base}/jobs/",
        {"endpoints": ["tiny"], "k": 2, "prompt_filter": {"mode": "ids", "ids": ["q0", "zz"]}},
        content_type="application/json",
    )
    assert refused.status_code == 400
    assert refused.json()["field"] == "prompt_filter" and "'zz'" in refused.json()["detail"]
    refused = client.post(
        f"{base}/jobs/",
        {"endpoints": ["tiny"], "k": 2, "prompt_filter": {"mode": "ids", "ids": [1.5]}},
        content_type="application/json",
    )
    assert refused.status_code == 400 and "imported" in refused.json()["detail"]


@pytest.mark.parametrize(
    "path, home",
    [
        ("/generation/{slug}/jobs/new/", "/generation/{slug}/"),
        ("/generation/{slug}/endpoints/new/", "/generation/{slug}/"),
        ("/projects/{slug}/judges/new/", "/projects/{slug}/judges/"),
    ],
)
def test_reloading_a_refused_form_goes_back_to_its_page(research_project, researcher, client_for, path, home):
    """A refused form is shown again at the address it was posted to; reloading it (a GET) answered a
    blank 405. Now it goes back to the page the form lives on; other methods still get a 405, and
    someone without access still gets nothing."""
    from annotate.services.projects import membership_add

    membership_add(project=research_project, user=researcher, role="manager")  # judges need "judge"
    client = client_for(researcher)
    url, back = path.format(slug=research_project.slug), home.format(slug=research_project.slug)
    response = client.get(url)
    assert response.status_code == 302 and response["Location"] == back
    assert client.put(url).status_code == 405
    signed_out = Client().get(url)
    assert signed_out.status_code == 302 and signed_out["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("value", ["\u00b2", "9" * 30])
def test_odd_prompt_ids_are_named_not_a_500(research_project, researcher, endpoint, client_for, value):
    add_prompts(research_project, 2)
    client = client_for(researcher)
    page = client.post(
        f"/generation/{research_project.slug}/jobs/new/",
        {"endpoints": [endpoint.pk], "k": 2, "filter_mode": "ids", "ids": value, "batch_size": 2},
    )
    assert page.status_code == 400
    base = f"/api/v1/projects/{research_project.slug}/generation"
    api = client.post(
        f"{base}/jobs/",
        {"endpoints": ["tiny"], "k": 2, "prompt_filter": {"mode": "ids", "ids": [value]}},
        content_type="application/json",
    )
    assert api.status_code == 400 and api.json()["field"] == "prompt_filter"
