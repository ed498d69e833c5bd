"""A model server refusing the judge's key (401/403) or the model (404) with an error text that
PostgreSQL cannot store (a NUL, a lone surrogate): the judge job fails with the server's reason,
the character replaced, instead of crashing while recording its failure (left running)."""

from __future__ import annotations

import pytest

from annotate.models import JudgeJob, JudgeSuggestion
from core.jobs import JobState
from tests.annotate import judge_fakesrv as fakesrv
from tests.annotate.test_judges_defects import judged


@pytest.mark.parametrize("status", [401, 403, 404])
@pytest.mark.parametrize("message", ["key \u0000 refused", "key \ud800 refused"], ids=["nul", "surrogate"])
def test_a_refusal_whose_text_cannot_be_stored_fails_the_job_with_the_reason(
    status, message, make_project, servers
):
    run = judged(make_project, servers, fakesrv.refusing(status, message), tasks=["t0"])
    job = JudgeJob.objects.get(pk=run.pk)  # as stored
    assert job.state == JobState.FAILED
    assert f"({status})" in job.error or "404" in job.error
    assert "key \ufffd refused" in job.error and "\x00" not in job.error
    assert not JudgeSuggestion.objects.filter(job=job).exists()


@pytest.mark.parametrize(
    "status, data, reason",
    [
        (200, b"<html><body>502 Bad gateway</body></html>", "not JSON"),
        (200, b"\x00\x00\x00", "not JSON"),
        (200, b'{"choices": [{"message": {"content": "\xff\xfe"}}]}', "not JSON"),
        (400, b"<html>\x00 bad \xff</html>", "(400): <html>\ufffd bad \ufffd</html>"),
        (422, b'{"detail": [{"msg": "x\\u0000\\ud800"}]}', "(422)"),
    ],
    ids=["200-html", "200-nul-bytes", "200-bad-utf8", "400-html-nul", "422-detail-list"],
)
def test_a_broken_body_is_a_failed_suggestion_with_a_storable_reason(
    status, data, reason, make_project, servers
):
    def raw(handler, body):
        fakesrv.send(handler, status, raw=data, content_type="text/html")

    job = judged(make_project, servers, raw, tasks=["t0"])
    assert job.state == JobState.FAILED and "Every task failed" in job.error
    [(status_, error, transient)] = JudgeSuggestion.objects.filter(job=job).values_list(
        "status", "error", "transient"
    )
    assert status_ == "failed" and reason in error and "\x00" not in error and not transient
