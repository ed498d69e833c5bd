"""A researcher reviews a generation job's staged candidates in Chromium: the checks per model,
sample outputs with their failed checks as badges (model text escaped), then releases the passing
ones and sees the tasks created; nothing reached the labeling queue before."""

from __future__ import annotations

import pytest

from annotate.models import Task
from annotate.services.projects import membership_add
from tests.e2e.conftest import login
from tests.generation.staged_data import staged_job

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_release_the_passing_candidates(page, screenshot, make_project, make_user, monkeypatch):
    project = make_project(name="Staged <em>release</em>")
    researcher = make_user("rita")
    membership_add(project=project, user=researcher, role="researcher")
    job = staged_job(project, monkeypatch, actor=researcher)
    assert not Task.objects.filter(generation_job=job).exists()

    login(page, "rita")
    page.goto(f"/generation/{project.slug}/jobs/{job.pk}/")
    staged = page.locator("#staged")
    assert staged.get_attribute("data-release") == "staged"
    e1 = staged.locator("tr[data-endpoint=e1]")
    assert e1.locator("[data-field=candidates]").inner_text() == "8"
    assert e1.locator("[data-field=passing]").inner_text() == "3"
    assert e1.locator("[data-check=identical]").inner_text() == "2"
    badges = staged.locator(".badge-check").all_inner_texts()
    assert {"empty", "duplicate", "identical pair", "control chars", "over length", "stop reason"} <= set(
        badges
    )
    # model output is text, not markup
    assert page.locator(".sample-text", has_text="<b>bold</b> & fine").count() == 1
    assert page.locator(".sample-text b").count() == 0
    screenshot(page, "generation-staged-candidates")

    page.get_by_role("button", name="Release passing (6 responses, 4 tasks)").click()
    page.wait_for_selector("#staged[data-release=released]")
    result = page.inner_text("[data-field=release-result]")
    assert "passing candidates only" in result and "by rita" in result
    assert page.inner_text("[data-field=released-tasks]") == "4"
    assert page.inner_text("[data-field=excluded-candidates]") == "10"
    assert page.inner_text("#job-progress [data-field=tasks]") == "4"
    assert page.get_by_role("button", name="Release all").count() == 0  # released once
    assert Task.objects.filter(generation_job=job).count() == 4
    assert page.recorder.csp_violations == [] and page.recorder.page_errors == []
    screenshot(page, "generation-staged-released")


def test_a_manager_finds_the_job_waiting_and_releases_it(
    page, screenshot, make_project, make_user, monkeypatch
):
    """A manager (no research capability) reaches the staged job from the project's Progress page,
    reads its checks and settings (no cancel, no job list) and releases every response."""
    project = make_project(name="Managed staging")
    researcher = make_user("rhea")
    membership_add(project=project, user=researcher, role="researcher")
    manager = make_user("manon")
    membership_add(project=project, user=manager, role="manager")
    job = staged_job(project, monkeypatch, actor=researcher)

    login(page, "manon")
    page.goto(f"/projects/{project.slug}/manage/")
    waiting = page.locator("#staged-jobs")
    link = waiting.get_by_role("link", name=f"Job #{job.pk}: 16 responses waiting for release")
    assert link.count() == 1
    screenshot(page, "manage-progress-staged-jobs")
    link.click()
    page.wait_for_selector("#staged[data-release=staged]")
    assert page.get_by_role("button", name="Cancel job").count() == 0
    assert page.get_by_role("link", name="All generation jobs").count() == 0
    assert page.locator("#staged tr[data-endpoint=e2] [data-field=passing]").inner_text() == "3"
    screenshot(page, "generation-staged-candidates-manager")

    page.get_by_role("button", name="Release all (16 responses, 24 tasks)").click()
    page.wait_for_selector("#staged[data-release=released]")
    assert "by manon" in page.inner_text("[data-field=release-result]")
    assert page.inner_text("[data-field=released-tasks]") == "24"
    assert Task.objects.filter(generation_job=job).count() == 24
    page.get_by_role("link", name="Jobs waiting for release").click()
    assert page.locator("#staged-jobs").inner_text().count("waiting for release") == 0
    assert "No generated responses wait for a release." in page.inner_text("#staged-jobs")
    assert page.recorder.csp_violations == [] and page.recorder.page_errors == []
