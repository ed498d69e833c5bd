"""The AI judges' REST API (annotate/apis_judges.py): a researcher's script adds a judge, runs it,
follows its job and reads its cost; a manager re-routes. Refusals are 4xx in the error schema,
with the field; ids of another project are 404. (Roles and token scopes on every route: the
permission matrix, tests/test_permission_matrix.py.)"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from annotate.judges.services import judge_job_run, reroute_job_run
from annotate.models import AuditEvent, JudgeJob, RerouteJob, RoutingDecision
from annotate.services.projects import membership_add, project_update_settings
from annotate.services.tokens import token_create
from generation.services import endpoint_create
from tests.annotate.test_judges import PAIRS, fake_server, make_pairs  # noqa: F401 (fixture)
from tests.openapi import assert_documented

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(make_project, make_user, fake_server):  # noqa: F811
    _backend, url = fake_server
    project = make_project(name="Judged by API")
    researcher, manager = make_user("api-researcher"), make_user("api-manager")
    membership_add(project=project, user=researcher, role="researcher")
    membership_add(project=project, user=manager, role="manager")
    tasks = make_pairs(project)
    endpoint_create(
        name="api-judge-ep", backend="openai", model="fake-judge", config={"base_url": url}, project=project
    )
    _, secret = token_create(user=researcher, name="script", projects=[project])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return project, researcher, manager, tasks, client


def test_a_script_adds_a_judge_runs_it_and_reads_the_job(setup):
    project, researcher, _manager, tasks, client = setup
    base = f"/api/v1/projects/{project.slug}"
    resp = client.post(
        f"{base}/judges/",
        {"name": "api-judge", "endpoint": "api-judge-ep", "sampling": {"temperature": 0},
         "price_prompt_per_1k": "0.5", "price_completion_per_1k": "1"},
        format="json",
    )  # fmt: skip
    assert resp.status_code == 201, resp.json()
    judge = resp.json()
    assert (
        judge["name"] == "api-judge"
        and judge["endpoint"] == "api-judge-ep"
        and judge["model"] == "fake-judge"
    )
    assert judge["price_prompt_per_1k"] == "0.500000" and judge["is_active"] is True
    listed = client.get(f"{base}/judges/").json()
    assert [j["name"] for j in listed["results"]] == ["api-judge"]

    resp = client.post(f"{base}/judges/{judge['id']}/jobs/", {"limit": 3}, format="json")
    assert resp.status_code == 201, resp.json()
    job = resp.json()
    assert (job["state"], job["total_units"], job["judge"], job["created_by"]) == (
        "queued", 3, "api-judge", researcher.username,
    )  # fmt: skip
    judge_job_run(job_id=job["id"])  # what the generation worker does
    detail = client.get(f"{base}/judge-jobs/{job['id']}/").json()
    assert detail["state"] == "done" and detail["done_units"] == 3 and detail["finished"] is True
    assert sum(v for k, v in detail["suggestions"].items() if k != "failed_transient") == 3
    assert detail["prompt_tokens"] > 0 and detail["cost"] is not None
    assert [j["id"] for j in client.get(f"{base}/judge-jobs/").json()["results"]] == [job["id"]]
    # ended: cancelling is a conflict, in the error schema
    resp = client.post(f"{base}/judge-jobs/{job['id']}/cancel/")
    assert resp.status_code == 409 and "already finished" in resp.json()["detail"]
    # only the tasks not judged yet, by default: the other two
    again = client.post(f"{base}/judges/{judge['id']}/jobs/", {}, format="json").json()
    assert again["total_units"] == len(tasks) - 3
    resp = client.post(f"{base}/judge-jobs/{again['id']}/cancel/")
    assert resp.status_code == 200 and resp.json()["state"] == "cancelled"
    assert AuditEvent.objects.filter(action="judge_job.cancel", actor=researcher).count() == 1


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"name": "x", "endpoint": "no-such"}, "endpoint", "No endpoint named 'no-such'"),
        ({"name": "!!!", "endpoint": "api-judge-ep"}, "name", "needs a name"),
        ({"endpoint": "api-judge-ep"}, "name", "required"),
        ({"name": "x", "endpoint": "api-judge-ep", "sampling": "hot"}, "sampling", ""),
        ({"name": "x", "endpoint": "api-judge-ep", "sampling": {"n": 4}}, "sampling", ""),
        ({"name": "x", "endpoint": "api-judge-ep", "price_prompt_per_1k": "-1"}, "price_prompt_per_1k", ""),
    ],
)
def test_bad_judges_are_refused_with_the_field(setup, body, field, words):
    project, _r, _m, _t, client = setup
    resp = client.post(f"/api/v1/projects/{project.slug}/judges/", body, format="json")
    assert resp.status_code == 400, resp.json()
    assert resp.json()["field"] == field and words in resp.json()["detail"]


def test_a_second_judge_of_the_same_name_is_a_conflict(setup):
    project, _r, _m, _t, client = setup
    url = f"/api/v1/projects/{project.slug}/judges/"
    assert client.post(url, {"name": "twin", "endpoint": "api-judge-ep"}, format="json").status_code == 201
    assert client.post(url, {"name": "twin", "endpoint": "api-judge-ep"}, format="json").status_code == 409


def test_bad_runs_and_other_projects_ids(setup, make_project, make_user, fake_server):  # noqa: F811
    project, _r, _m, _t, client = setup
    base = f"/api/v1/projects/{project.slug}"
    judge = client.post(f"{base}/judges/", {"name": "j", "endpoint": "api-judge-ep"}, format="json").json()
    for body, field in (
        ({"limit": 0}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"task_ids": "1,2"}, "task_ids"),
        ({"task_ids": [999999]}, "task_ids"),  # none of the project's: nothing to judge
    ):
        resp = client.post(f"{base}/judges/{judge['id']}/jobs/", body, format="json")
        assert resp.status_code == 400 and resp.json()["field"] == field, (body, resp.json())
    # a judge and a job of another project, addressed through this one: 404, nothing made
    other = make_project(name="Someone else's")
    _backend, url = fake_server
    from annotate.judges.services import judge_create, judge_job_create

    ep = endpoint_create(
        name="other-ep", backend="openai", model="m", config={"base_url": url}, project=other
    )
    make_pairs(other)
    their_judge = judge_create(project=other, name="theirs", endpoint=ep, actor=make_user())
    their_job = judge_job_create(judge=their_judge)
    assert client.post(f"{base}/judges/{their_judge.pk}/jobs/", {}, format="json").status_code == 404
    assert client.get(f"{base}/judge-jobs/{their_job.pk}/").status_code == 404
    assert client.post(f"{base}/judge-jobs/{their_job.pk}/cancel/").status_code == 404
    assert JudgeJob.objects.get(pk=their_job.pk).state == "queued"
    assert JudgeJob.objects.filter(judge=their_judge).count() == 1


def test_managers_reroute_through_the_api(setup):
    project, _researcher, manager, _tasks, client = setup
    base = f"/api/v1/projects/{project.slug}"
    judge = client.post(f"{base}/judges/", {"name": "j", "endpoint": "api-judge-ep"}, format="json").json()
    job = client.post(f"{base}/judges/{judge['id']}/jobs/", {}, format="json").json()
    judge_job_run(job_id=job["id"])  # routing was off: nothing decided yet
    assert not RoutingDecision.objects.filter(project=project).exists()
    # researchers may not re-route (the page's rule too)
    assert client.post(f"{base}/judges/reroute/").status_code == 403
    assert client.get(f"{base}/judges/reroute/").status_code == 403
    boss = APIClient()
    boss.force_authenticate(manager)
    assert boss.get(f"{base}/judges/reroute/").status_code == 404  # none yet
    resp = boss.post(f"{base}/judges/reroute/")
    assert resp.status_code == 400 and resp.json()["field"] == "judge_routing"
    project_update_settings(project=project, judge_routing=True, judge_audit_share=0.0, judge_min_strength=2)
    resp = boss.post(f"{base}/judges/reroute/")
    assert resp.status_code == 202, resp.json()
    started = resp.json()
    assert (started["state"], started["total_units"], started["created_by"]) == (
        "queued",
        len(PAIRS),
        "api-manager",
    )
    assert boss.post(f"{base}/judges/reroute/").status_code == 409  # one at a time
    reroute_job_run(job_id=started["id"])  # what the worker does
    status = boss.get(f"{base}/judges/reroute/").json()
    assert status["state"] == "done" and status["done_units"] == len(PAIRS) and status["stalled"] is False
    assert status["outcome"]["rerouted"] == len(PAIRS)
    assert RoutingDecision.objects.filter(project=project).count() == len(PAIRS)
    assert RerouteJob.objects.get().created_by == manager


def test_answers_have_the_documented_shapes(setup):
    """Each answer of a judge's life, checked against the published OpenAPI document."""
    project, _r, manager, _t, client = setup
    base = f"/api/v1/projects/{project.slug}"
    doc = "/api/v1/projects/{slug}"
    resp = client.post(f"{base}/judges/", {"name": "shape", "endpoint": "api-judge-ep"}, format="json")
    assert_documented(resp, "POST", f"{doc}/judges/")
    judge_id = resp.json()["id"]
    assert_documented(client.get(f"{base}/judges/"), "GET", f"{doc}/judges/")
    assert_documented(
        client.post(f"{base}/judges/", {"name": "shape", "endpoint": "api-judge-ep"}, format="json"),
        "POST",
        f"{doc}/judges/",
    )  # the 409
    resp = client.post(f"{base}/judges/{judge_id}/jobs/", {"limit": 2}, format="json")
    assert_documented(resp, "POST", f"{doc}/judges/{{judge_id}}/jobs/")
    job_id = resp.json()["id"]
    judge_job_run(job_id=job_id)
    assert_documented(client.get(f"{base}/judge-jobs/"), "GET", f"{doc}/judge-jobs/")
    assert_documented(
        client.get(f"{base}/judge-jobs/{job_id}/"), "GET", f"{doc}/judge-jobs/{{judge_job_id}}/"
    )
    assert_documented(
        client.post(f"{base}/judge-jobs/{job_id}/cancel/"),
        "POST",
        f"{doc}/judge-jobs/{{judge_job_id}}/cancel/",
    )
    boss = APIClient()
    boss.force_authenticate(manager)
    project_update_settings(project=project, judge_routing=True)
    resp = boss.post(f"{base}/judges/reroute/")
    assert_documented(resp, "POST", f"{doc}/judges/reroute/")
    reroute_job_run(job_id=resp.json()["id"])
    assert_documented(boss.get(f"{base}/judges/reroute/"), "GET", f"{doc}/judges/reroute/")


def test_switching_a_judge_off_and_retrying_a_jobs_failed_tasks(setup):
    project, researcher, _manager, _tasks, client = setup
    base = f"/api/v1/projects/{project.slug}"
    judge = client.post(f"{base}/judges/", {"name": "sw", "endpoint": "api-judge-ep"}, format="json").json()
    url = f"{base}/judges/{judge['id']}/"
    assert client.get(url).json()["is_active"] is True
    queued = client.post(f"{url}jobs/", {"limit": 2}, format="json").json()
    # off: its queued job is cancelled, and it cannot run
    resp = client.patch(url, {"is_active": False}, format="json")
    assert (
        resp.status_code == 200 and resp.json()["is_active"] is False and resp.json()["jobs_cancelled"] == 1
    )
    assert JudgeJob.objects.get(pk=queued["id"]).state == "cancelled"
    resp = client.post(f"{url}jobs/", {}, format="json")
    assert resp.status_code == 400 and "switched off" in resp.json()["detail"]
    resp = client.patch(url, {"is_active": "maybe"}, format="json")
    assert resp.status_code == 400 and resp.json()["field"] == "is_active"
    assert client.patch(url, {"is_active": True}, format="json").json()["jobs_cancelled"] == 0
    assert AuditEvent.objects.filter(action="judge.deactivate", actor=researcher).count() == 1

    # a job whose server was down for two tasks: retry them
    job = client.post(f"{url}jobs/", {"limit": 3}, format="json").json()
    resp = client.post(f"{base}/judge-jobs/{job['id']}/retry/")
    assert resp.status_code == 409  # still queued
    judge_job_run(job_id=job["id"])
    resp = client.post(f"{base}/judge-jobs/{job['id']}/retry/")
    assert resp.status_code == 400 and "transient" in resp.json()["detail"]  # nothing failed
    outage = JudgeJob.objects.get(pk=job["id"]).suggestions.order_by("task_id")[:2]
    for s in outage:  # what a failed call records: no verdict
        s.status, s.transient, s.error, s.choice, s.strength = "failed", True, "connection refused", "", None
        s.save()
    resp = client.post(f"{base}/judge-jobs/{job['id']}/retry/")
    assert resp.status_code == 200 and resp.json()["state"] == "queued", resp.json()
    judge_job_run(job_id=job["id"])
    detail = client.get(f"{base}/judge-jobs/{job['id']}/").json()
    assert detail["state"] == "done" and detail["suggestions"]["failed"] == 0
