"""AI judge jobs against a hostile OpenAI-compatible server (``judge_fakesrv`` through the real
``openai`` backend): a version or a finish reason the server reports that PostgreSQL cannot store
(a NUL, a lone surrogate) no longer fails the whole job with no suggestion written; answers of
the wrong shape are failed suggestions with a readable reason; implausible token counts are
unknown."""

from __future__ import annotations

import pytest

from annotate.models import JudgeSuggestion
from core.jobs import JobState
from tests.annotate import judge_fakesrv as fakesrv
from tests.annotate.test_judges_defects import judged, prefers_x
from tests.generation.test_probe_server_answers import UNSTORABLE_VERSIONS


def answering_with(**changes):
    """A consistent judge (prefers X) whose answers carry ``changes`` (top-level keys, or
    ``choice_<key>`` of the choice); sent as JSON, a NUL as \\u0000, a surrogate as \\ud800."""

    def behaviour(handler, body):
        payload = fakesrv.completion(prefers_x(body["messages"][-1]["content"]))
        for key, value in changes.items():
            if key.startswith("choice_"):
                payload["choices"][0][key[len("choice_") :]] = value
            else:
                payload[key] = value
        fakesrv.send(handler, 200, payload)

    return behaviour


@UNSTORABLE_VERSIONS
def test_a_reported_version_that_cannot_be_stored_does_not_fail_the_job(changes, make_project, servers):
    """Before: the job failed with "DataError: PostgreSQL text fields cannot contain NUL (0x00)
    bytes" (or a UnicodeEncodeError) and no suggestion was written, though every answer was a
    good verdict (and paid for). Now the suggestions are written, the version with U+FFFD."""
    job = judged(make_project, servers, answering_with(**changes))
    assert job.state == JobState.DONE, job.error
    rows = list(JudgeSuggestion.objects.filter(job=job).values_list("status", "model_version"))
    assert len(rows) == 2
    for status, version in rows:
        assert status == "ok"
        assert "\ufffd" in version and version.endswith("-x") and "\x00" not in version


@pytest.mark.parametrize("reason", ["st\u0000op", "\ud800"], ids=["nul", "surrogate"])
def test_a_finish_reason_that_cannot_be_stored_is_harmless(reason, make_project, servers):
    job = judged(make_project, servers, answering_with(choice_finish_reason=reason))
    assert job.state == JobState.DONE, job.error
    assert list(JudgeSuggestion.objects.filter(job=job).values_list("status", flat=True)) == ["ok", "ok"]


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"choices": None}, "not an OpenAI chat completion"),
        ({"choices": []}, "no choices"),
        ({"choice_message": {"role": "assistant", "content": 5}}, "content is a int"),
    ],
    ids=["choices-null", "choices-empty", "content-int"],
)
def test_an_answer_of_the_wrong_shape_is_a_failed_suggestion_with_the_reason(
    changes, reason, make_project, servers
):
    job = judged(make_project, servers, answering_with(**changes))
    assert job.state == JobState.FAILED and "Every task failed" in job.error
    rows = list(JudgeSuggestion.objects.filter(job=job).values_list("status", "error", "transient"))
    assert len(rows) == 2 and all(s == "failed" and reason in e and not t for s, e, t in rows)


def test_an_answer_with_no_text_is_unparseable_not_a_crash(make_project, servers):
    job = judged(make_project, servers, answering_with(choice_message=None))
    assert job.state == JobState.DONE, job.error
    rows = list(JudgeSuggestion.objects.filter(job=job).values_list("status", "error"))
    assert rows == [("unparseable", "The judge answered nothing.; The judge answered nothing.")] * 2


def test_a_verdict_holding_a_nul_is_stored_replaced_and_unparseable(make_project, servers):
    text = '{"verdict": "A\u0000"} \u0000 \ud800'
    job = judged(make_project, servers, answering_with(choice_message={"role": "assistant", "content": text}))
    assert job.state == JobState.DONE, job.error
    for status, raw in JudgeSuggestion.objects.filter(job=job).values_list("status", "raw_first"):
        assert status == "unparseable" and raw == '{"verdict": "A\ufffd"} \ufffd \ufffd'
