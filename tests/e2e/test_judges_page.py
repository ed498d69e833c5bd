"""A manager creates an AI judge, runs a judge job and reads its suggestions and costs in a real
browser; the judge's rationale (model output) is shown as text, never run, and the page raises no
CSP violation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotate.judges.services import judge_job_run, reroute_job_run
from annotate.models import JudgeJob, RerouteJob, RoutingDecision
from annotate.services.guidelines import guideline_publish
from annotate.services.projects import membership_add
from generation.openai_server import serve_in_thread
from generation.services import endpoint_create
from tests.annotate.judge_fakes import FakeJudgeBackend
from tests.annotate.test_judges import PAIRS, make_pairs
from tests.e2e.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fake_url(settings):
    settings.PREFHUB_ALLOWED_MODEL_HOSTS = ["127.0.0.1"]
    server, url = serve_in_thread(FakeJudgeBackend(), served_model_name="fake-judge")
    yield url
    server.shutdown()
    server.server_close()


def test_manager_creates_a_judge_runs_it_and_reads_results(
    page, screenshot, make_project, make_user, fake_url
):
    manager = make_user("judge-boss")
    project = make_project(name="Judged project", dimensions=[{"key": "helpfulness", "label": "Helpfulness"}])
    membership_add(project=project, user=manager, role="manager")
    guideline_publish(project=project, actor=manager, body="Prefer the helpful answer.")
    make_pairs(project)
    endpoint_create(
        name="fake-ep", backend="openai", model="fake-judge", config={"base_url": fake_url}, project=project
    )

    login(page, manager.username)
    page.goto(f"/projects/{project.slug}/judges/")
    page.fill("input[name=name]", "gpt-judge")
    page.select_option("select[name=endpoint]", label="fake-ep")
    page.fill("input[name=price_prompt_per_1k]", "0.5")
    page.fill("input[name=price_completion_per_1k]", "1")
    page.click("text=Add judge")
    assert "Judge gpt-judge added" in page.inner_text("body")

    # bad input: a 400 with a clear message, not a 500
    page.click("summary:has-text('Add a judge')")
    page.fill("input[name=name]", "other")
    page.select_option("select[name=endpoint]", label="fake-ep")
    page.fill("input[name=sampling]", "{not json")
    page.click("text=Add judge")
    assert "Sampling must be a JSON object" in page.inner_text("body")

    page.goto(f"/projects/{project.slug}/judges/")
    page.click("text=Run judge")
    job = JudgeJob.objects.get()
    assert page.inner_text("[data-field=state]") == "Queued"
    assert page.locator("[data-field=stalled]").count() == 0
    # a worker took it and died 11 minutes ago: the page says so (the sweep sends it again)
    quiet = timezone.now() - timedelta(minutes=11)
    JudgeJob.objects.filter(pk=job.pk).update(state="running", created_at=quiet, progress_at=quiet)
    page.reload()
    assert "No progress for 11" in page.inner_text("[data-field=stalled]")
    screenshot(page, "judge-job-stalled")
    judge_job_run(job_id=job.pk)  # what the generation worker does (the job resumes)
    page.reload()
    assert page.inner_text("[data-field=state]") == "Done"
    assert page.inner_text("[data-field=done]") == f"{len(PAIRS)} / {len(PAIRS)}"
    assert page.inner_text("[data-field=inconsistent]") == "1"
    assert page.inner_text("[data-field=unparseable]") == "1"
    assert page.inner_text("[data-field=cost]") == "0.7000"  # 5 pairs x (200 x 0.5 + 40 x 1) / 1000
    rationale = page.inner_text("#suggestions tbody tr:first-child .rationale")
    assert "<script>" in rationale  # shown as text
    assert page.evaluate("window.__judge_xss") is None
    assert page.recorder.csp_violations == [] and page.recorder.page_errors == []
    screenshot(page, "judge-job")

    page.goto(f"/projects/{project.slug}/judges/")
    assert "0.7000" in page.inner_text("#judge-jobs")
    page.check("input[name=judge_routing]")
    page.fill("input[name=judge_audit_share]", "0.25")
    page.click("text=Save judge settings")
    assert "Judge settings saved" in page.inner_text("body")
    project.refresh_from_db()
    assert project.judge_routing and project.judge_audit_share == 0.25 and not project.judge_pre_annotation
    assert page.recorder.csp_violations == [] and page.recorder.page_errors == []
    screenshot(page, "judges")

    # the job ran before routing was on: re-routing decides its tasks now, after a confirmation
    page.click("summary:has-text('Re-route undecided and unlabeled tasks')")
    assert "the 5 tasks no human has worked on yet" in page.inner_text("#reroute")
    page.check("#reroute-confirm")
    page.click("#reroute-form button[type=submit]")
    # a worker re-routes; until it has, the page says it waits and offers no second button
    assert f"Re-routing {len(PAIRS)} tasks in the background" in page.inner_text("body")
    assert "A re-route is waiting for a worker" in page.inner_text("#reroute-status")
    assert page.locator("#reroute-form").count() == 0
    reroute_job_run(job_id=RerouteJob.objects.get(project=project).pk)  # what the worker does
    page.reload()
    assert f"Re-routed {len(PAIRS)} tasks" in page.inner_text("#reroute-status")
    assert page.get_attribute("#reroute", "open") is None
    page.click("summary:has-text('Re-route undecided and unlabeled tasks')")
    screenshot(page, "judges-rerouted")
    assert RoutingDecision.objects.filter(project=project).count() == len(PAIRS)
    assert page.recorder.csp_violations == [] and page.recorder.page_errors == []
