"""A model server answering megabytes of text: the answer fails its prompt with the reason
instead of being stored as a candidate far longer than any candidate may be imported
(``MAX_TEXT_CHARS``); the batch's other prompts are written."""

from __future__ import annotations

import pytest

from annotate.models import Candidate
from annotate.services.imports import MAX_TEXT_CHARS
from core.jobs import JobState
from generation.models import CandidateCheck, GenerationFailure
from tests.generation.conftest import openai_job_inline
from tests.generation.test_backend_openai_defects import by_prompt, completion, fake_server, send  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def run_job(project, url, k):
    return openai_job_inline(project, url, k=k)


@pytest.mark.parametrize("k", [1, 2])
def test_an_answer_longer_than_a_candidate_may_be_fails_its_prompt(k, research_project, fake_server):  # noqa: F811
    """Before: a 3 MB answer (one sample of k) was stored whole as a candidate. Now the prompt fails
    with the reason and none of its samples is stored."""
    huge = "x" * (3 * 1024 * 1024)
    texts = [huge] + ["short"] * (k - 1)
    long_answer = lambda h, body: send(h, 200, completion(texts))  # noqa: E731
    _, url = fake_server(default=by_prompt({"number 1": long_answer}))
    job = run_job(research_project, url, k)
    assert job.state == JobState.DONE, job.error
    assert set(
        Candidate.objects.filter(generation_job=job).values_list("prompt__external_id", flat=True)
    ) == {"q0"}
    assert Candidate.objects.filter(generation_job=job).count() == k
    assert CandidateCheck.objects.filter(job=job).count() == k
    [failure] = GenerationFailure.objects.filter(job=job)
    assert failure.prompt.external_id == "q1"
    assert f"{len(huge):,} characters" in failure.message and f"{MAX_TEXT_CHARS:,}" in failure.message


def test_an_answer_at_the_limit_is_kept(research_project, fake_server):  # noqa: F811
    text = "y" * MAX_TEXT_CHARS
    _, url = fake_server(default=lambda h, body: send(h, 200, completion([text])))
    job = run_job(research_project, url, 1)
    assert job.state == JobState.DONE and not GenerationFailure.objects.filter(job=job).exists()
    assert [len(t) for t in Candidate.objects.filter(generation_job=job).values_list("text", flat=True)] == [
        MAX_TEXT_CHARS
    ] * 2
