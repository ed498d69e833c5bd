"""Generation jobs against a hostile or broken OpenAI-compatible server (a scripted fake on
127.0.0.1, through the real ``openai`` backend and ``job_run_inline``). Two prompts per job: the
server answers "Question number 1" with the hostile answer and the other normally, so each test
shows the bad answer fails (or is stored cleanly) on its own while the other prompt is written."""

from __future__ import annotations

import json

import pytest

from annotate.models import Candidate
from core.jobs import JobState
from generation.models import CandidateCheck, GenerationFailure
from tests.generation.conftest import openai_job_inline
from tests.generation.test_backend_openai_defects import by_prompt, completion, fake_server, send  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db

HOSTILE_PROMPT = "number 1"


def run_job(project, url, hostile=None):
    """A job of two prompts (q0 answered normally, q1 as the server scripts it), run inline."""
    return openai_job_inline(project, url)


def answer_with(**changes):
    """A completion of "fine" with top-level keys (or ``choice_<key>``s of its choice) replaced;
    sent as JSON, so a NUL travels as \\u0000 and a lone surrogate as \\ud800."""
    payload = completion(["fine"])
    for key, value in changes.items():
        if key.startswith("choice_"):
            payload["choices"][0][key[len("choice_") :]] = value
        else:
            payload[key] = value
    return lambda h, body: send(h, 200, raw=json.dumps(payload).encode())


def by_external_id(job):
    return {
        c.prompt.external_id: c for c in Candidate.objects.filter(generation_job=job).select_related("prompt")
    }


# --- 1. a version the server reports that cannot be stored ----------------------------------------


#: Versions a server may report that PostgreSQL cannot store (NUL, lone surrogates), by where.
UNSTORABLE_VERSIONS = pytest.mark.parametrize(
    "changes",
    [
        {"model": "m-\u0000-x"},
        {"model": "m-\ud800-x"},
        {"system_fingerprint": "fp-\u0000-x"},
        {"system_fingerprint": "fp-\udfff-x"},
    ],
    ids=["model-nul", "model-surrogate", "fingerprint-nul", "fingerprint-surrogate"],
)


@UNSTORABLE_VERSIONS
def test_a_reported_version_that_cannot_be_stored_does_not_lose_the_batch(
    changes,
    research_project,
    fake_server,  # noqa: F811
):
    """Before: the version went into Candidate.model_version as sent; the write raised DataError
    (NUL) or UnicodeEncodeError (surrogate), the batch's every prompt was failed with that raw
    database error, and the good answers of the batch were lost. Now the version is stored with the
    character replaced (U+FFFD) and every answer is written."""
    _, url = fake_server(default=by_prompt({HOSTILE_PROMPT: answer_with(**changes)}))
    job = run_job(research_project, url, changes)
    assert job.state == JobState.DONE, job.error
    assert not GenerationFailure.objects.filter(job=job).exists()
    candidates = by_external_id(job)
    assert sorted(candidates) == ["q0", "q1"]
    assert candidates["q0"].model_version == "m"
    hostile = candidates["q1"]
    assert hostile.text == "fine"
    assert "\ufffd" in hostile.model_version and "-x" in hostile.model_version
    assert "\x00" not in hostile.model_version


def test_a_version_that_is_not_text_is_not_recorded_as_its_python_repr(research_project, fake_server):  # noqa: F811
    """Before: a system_fingerprint of {"a": 1} was recorded as the version "{'a': 1}". Now only
    a text version is taken (else the model's name)."""
    _, url = fake_server(
        default=by_prompt({HOSTILE_PROMPT: answer_with(system_fingerprint={"a": 1}, model="m2")})
    )
    job = run_job(research_project, url, None)
    assert job.state == JobState.DONE, job.error
    assert by_external_id(job)["q1"].model_version == "m2"


# --- 2. a finish reason that cannot be stored -----------------------------------------------------


@pytest.mark.parametrize("reason", ["st\u0000op", "\ud800"], ids=["nul", "surrogate"])
def test_a_finish_reason_that_cannot_be_stored_does_not_lose_the_batch(reason, research_project, fake_server):  # noqa: F811
    """Before: the server's finish_reason went into CandidateCheck.finish_reason as sent: DataError
    / UnicodeEncodeError, the whole batch failed and no candidate was kept. Now it is stored with
    the character replaced, and the candidate's stop_reason check fails (not a normal stop)."""
    _, url = fake_server(default=by_prompt({HOSTILE_PROMPT: answer_with(choice_finish_reason=reason)}))
    job = run_job(research_project, url, None)
    assert job.state == JobState.DONE, job.error
    assert not GenerationFailure.objects.filter(job=job).exists()
    candidates = by_external_id(job)
    assert sorted(candidates) == ["q0", "q1"]
    check = CandidateCheck.objects.get(candidate=candidates["q1"])
    assert "\ufffd" in check.finish_reason and "\x00" not in check.finish_reason
    assert check.stop_reason and not check.passed
    assert CandidateCheck.objects.get(candidate=candidates["q0"]).passed


# --- 3. answers of the wrong shape fail their own prompt, readably --------------------------------


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"choices": None}, "not an OpenAI chat completion"),
        ({"choices": []}, "no choices"),
        ({"choices": ["x"]}, "not an OpenAI chat completion"),
        ({"choices": {"0": 1}}, "not an OpenAI chat completion"),
        ({"choice_message": {"role": "assistant", "content": 5}}, "content is a int"),
        ({"choice_message": {"role": "assistant", "content": [{"type": "image_url"}]}}, "image_url"),
    ],
    ids=[
        "choices-null",
        "choices-empty",
        "choice-str",
        "choices-dict",
        "content-int",
        "content-image",
    ],
)
def test_an_answer_of_the_wrong_shape_fails_its_prompt_alone(changes, reason, research_project, fake_server):  # noqa: F811
    _, url = fake_server(default=by_prompt({HOSTILE_PROMPT: answer_with(**changes)}))
    job = run_job(research_project, url, None)
    assert job.state == JobState.DONE, job.error
    assert sorted(by_external_id(job)) == ["q0"]
    [failure] = GenerationFailure.objects.filter(job=job)
    assert failure.prompt.external_id == "q1" and reason in failure.message


@pytest.mark.parametrize(
    "status, raw, reason",
    [
        (200, b"<html><body>502 Bad gateway</body></html>", "not JSON"),
        (200, b"\x00\x00", "not JSON"),
        (200, b'{"choices": [{"message": {"content": "a\xff\xfeb"}}]}', "not JSON"),
        (400, b'{"error": {"message": "bad \\u0000 \\ud800 request"}}', "bad \ufffd \ufffd request"),
        (400, b"<html>\x00bad</html>", "<html>\ufffdbad</html>"),
        (418, b"\xff\xfe teapot", "(418)"),
        (500, b"<html>oops</html>", "The server answered 500: <html>oops</html>"),
    ],
    ids=["html", "nul-bytes", "bad-utf8", "400-nul-json", "400-nul-html", "418-bad-utf8", "500-html"],
)
def test_a_broken_body_fails_its_prompt_alone_with_a_storable_reason(
    status,
    raw,
    reason,
    research_project,
    fake_server,  # noqa: F811
):
    _, url = fake_server(default=by_prompt({HOSTILE_PROMPT: lambda h, body: send(h, status, raw=raw)}))
    job = run_job(research_project, url, None)
    assert job.state == JobState.DONE, job.error
    assert sorted(by_external_id(job)) == ["q0"]
    [failure] = GenerationFailure.objects.filter(job=job)
    assert reason in failure.message and "\x00" not in failure.message
