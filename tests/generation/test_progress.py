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
