"""Token counts an OpenAI-compatible server reports that nobody could have used (negative,
2**70, true, a float, a string): unknown (None), never stored as sent. A scripted fake server on
127.0.0.1 through the real ``openai`` backend and ``job_run_inline``."""

from __future__ import annotations

import pytest

from core.jobs import JobState
from generation.models import CandidateCheck
from tests.generation.test_backend_openai_defects import by_prompt, fake_server  # noqa: F401 (fixture)
from tests.generation.test_probe_server_answers import HOSTILE_PROMPT, answer_with, by_external_id, run_job

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": -5, "completion_tokens": -3},
        {"prompt_tokens": 2**70, "completion_tokens": 2**70},
        {"prompt_tokens": True, "completion_tokens": True},
        {"prompt_tokens": 1.5, "completion_tokens": "3"},
        [1, 2],
        "12 tokens",
    ],
    ids=["negative", "2**70", "bool", "float-string", "usage-list", "usage-string"],
)
def test_implausible_token_counts_are_unknown(usage, research_project, fake_server):  # noqa: F811
    """Before: a negative, a 2**70 or a true count went into the candidate's metadata as sent (and
    2**70 completion tokens flagged it over_length). Now a count that is not a whole number from 0
    to 2**31-1 is unknown (None), as judges already treat it. A ``usage`` that is not an object
    (a list, a string) failed the whole answer ("not an OpenAI chat completion"), throwing away a
    good (and, for a judge, paid) answer: now its counts are unknown and the answer is kept."""
    _, url = fake_server(default=by_prompt({HOSTILE_PROMPT: answer_with(usage=usage)}))
    job = run_job(research_project, url, None)
    assert job.state == JobState.DONE, job.error
    hostile = by_external_id(job)["q1"]
    assert hostile.metadata["prompt_tokens"] is None and hostile.metadata["completion_tokens"] is None
    assert not CandidateCheck.objects.get(candidate=hostile).over_length
