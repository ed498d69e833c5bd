"""The job page's settings say what each model samples with: the job's own settings over the
endpoint's default_sampling over the defaults, as the batches run (services.sampling_for), not only
what the job recorded (a job that left temperature to the endpoint showed {"seed": ...} alone)."""

import html
import json

import pytest
from django.test import Client

from annotate.services.tasks import PairMode
from generation import services
from tests.generation.conftest import add_prompts

pytestmark = pytest.mark.django_db


def test_the_job_page_shows_each_models_sampling(research_project, researcher):
    tuned = services.endpoint_create(
        name="tuned", backend="transformers", model="/models/a", project=research_project,
        default_sampling={"temperature": 0.3, "max_new_tokens": 64},
    )  # fmt: skip
    plain = services.endpoint_create(
        name="plain", backend="transformers", model="/models/b", project=research_project
    )
    add_prompts(research_project, 2)
    job = services.job_create(
        project=research_project, endpoints=[tuned, plain], k=2, sampling={"top_p": 0.9, "seed": 5},
        enqueue=False, task_mode=PairMode.NONE,
    )  # fmt: skip
    client = Client()
    client.force_login(researcher)
    page = client.get(f"/generation/{research_project.slug}/jobs/{job.pk}/")
    assert page.status_code == 200
    text = html.unescape(page.content.decode())
    for endpoint, expected in (
        (
            tuned,
            {"temperature": 0.3, "top_p": 0.9, "top_k": None, "max_new_tokens": 64, "seed": 5, "stop": []},
        ),
        (
            plain,
            {"temperature": 1.0, "top_p": 0.9, "top_k": None, "max_new_tokens": 256, "seed": 5, "stop": []},
        ),
    ):
        assert services.sampling_for(job=job, endpoint=endpoint).to_dict() == {**expected, "n": 2}
        assert f"{endpoint.name}: {json.dumps(expected, sort_keys=True)}" in text, text[-4000:]
