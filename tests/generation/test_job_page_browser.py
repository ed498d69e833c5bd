"""A researcher watches a job's page in a real browser while its batches run: the progress
updates by itself (static/js/generation.js polling the JSON status, no inline script under the
CSP) and, when the job ends, the page reloads with the failures listed."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from generation import services
from generation.backends.base import PromptError
from generation.models import GenerationBatch
from tests.e2e.conftest import login
from tests.generation.conftest import add_prompts

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_job_page_follows_progress_live(page, screenshot, research_project, researcher, fake_backend):
    add_prompts(research_project, 4)
    fake_backend.fail = {
        "number 3?": PromptError("The prompt is 5000 tokens long but the model's context holds 1024")
    }
    endpoint = services.endpoint_create(
        name="fake", backend="transformers", model="/m", project=research_project
    )
    job = services.job_create(
        project=research_project, endpoints=[endpoint], k=2, batch_size=1, enqueue=False, auto_release="all"
    )
    batches = list(GenerationBatch.objects.filter(job=job).order_by("index"))

    login(page, researcher.username)
    page.goto(f"/generation/{research_project.slug}/jobs/{job.pk}/")
    assert page.inner_text("[data-field=state]") == "Queued"
    assert page.get_attribute("#job-progress", "data-finished") == "false"

    services.batch_run(batch_id=batches[0].pk)
    services.batch_run(batch_id=batches[1].pk)
    expect(page.locator("[data-field=done_units]")).to_have_text("2", timeout=15_000)
    assert page.inner_text("[data-field=state]") == "Running"
    assert page.get_attribute("progress[data-field=progress]", "value") == "2"

    for batch in batches[2:]:
        services.batch_run(batch_id=batch.pk)
    # the script reloads the page once the job has ended; the server-rendered page lists failures
    page.wait_for_selector("#job-progress[data-finished=true]", timeout=15_000)
    assert page.inner_text("[data-field=state]") == "Done"
    assert "context holds 1024" in page.inner_text(".failure-message")
    assert page.inner_text("[data-field=tasks]") == "3"
    assert page.recorder.csp_violations == [] and page.recorder.page_errors == []
    screenshot(page, "generation-job")
