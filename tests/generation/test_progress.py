"""Progress moves batch by batch (a report: the job page jumped from 0 to 100 %)."""

from generation import selectors, services
from generation.models import GenerationBatch
from tests.generation.conftest import add_prompts


def test_a_small_job_with_the_default_batch_size_moves_batch_by_batch(research_project, fake_backend):
    """Ten prompts with the form's default batch size (16) used to be one batch: nothing between
    0 and 100 %. They are split so that the first commit shows progress strictly between."""
    add_prompts(research_project, 10)
    endpoint = services.endpoint_create(
        name="fake", backend="transformers", model="/m", project=research_project
    )
    job = services.job_create(project=research_project, endpoints=[endpoint], k=2, enqueue=False)
    batches = list(GenerationBatch.objects.filter(job=job).order_by("index"))
    assert len(batches) >= 3
    seen = []
    for batch in batches:
        services.batch_run(batch_id=batch.pk)
        job.refresh_from_db()
        seen.append(selectors.job_status(job=job)["percent"])
    assert 0 < seen[0] < 100
    assert seen == sorted(seen) and len(set(seen)) == len(seen) and seen[-1] == 100


def test_percent_is_not_100_before_the_last_unit():
    assert selectors.progress_percent(199, 200) == 99
    assert selectors.progress_percent(1, 300) == 1
    assert selectors.progress_percent(0, 300) == 0
    assert selectors.progress_percent(200, 200) == 100
    assert selectors.progress_percent(0, 0) == 100


def test_the_page_and_the_api_show_the_first_batch(research_project, researcher, fake_backend, monkeypatch):
    from django.test import Client

    monkeypatch.setattr("core.outbox.send_task", lambda name, args: None)
    add_prompts(research_project, 10)
    endpoint = services.endpoint_create(
        name="fake", backend="transformers", model="/m", project=research_project
    )
    job = services.job_create(project=research_project, endpoints=[endpoint], k=2, enqueue=False)
    first = GenerationBatch.objects.filter(job=job).order_by("index").first()
    services.batch_run(batch_id=first.pk)
    client = Client()
    client.force_login(researcher)
    html = client.get(f"/generation/{research_project.slug}/jobs/{job.pk}/").content.decode()
    assert f'max="10" value="{len(first.prompt_ids)}"' in html
    status = client.get(f"/generation/{research_project.slug}/jobs/{job.pk}/status.json").json()
    api = client.get(f"/api/v1/generation/jobs/{job.pk}/").json()
    for data in (status, api):
        assert data["done_units"] == len(first.prompt_ids) == 3 and data["total_units"] == 10
        assert data["percent"] == 30 and data["state"] == "running"
        assert data["release"]["state"] == "generating"
    assert api["staged"] is None  # the summary comes once generation has ended
    assert "Staged candidates" not in html
