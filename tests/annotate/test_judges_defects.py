"""AI judge defects found by a probe, each reproduced against a scripted fake OpenAI-compatible
server (``judge_fakesrv``) through the real ``openai`` backend:

* a verdict the project does not allow (tie, both bad) never becomes a label or a preselection;
* a messy or hostile answer (infinite strength, deep nesting, huge numbers...) never fails a job;
* a server that reports no token usage leaves tokens and cost unknown, never $0;
* a server outage does not fail tasks for good: transient failures are judged again.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from annotate.judges import rubric as rb
from annotate.judges import selectors
from annotate.judges import services as judge_services
from annotate.judges.services import (
    judge_create,
    judge_job_create,
    judge_job_run,
    route_for,
    rubric_for,
)
from annotate.models import Annotation, JudgeJob, JudgeSuggestion, OutboxMessage, RoutingDecision, Task
from annotate.services.projects import project_update_settings
from core.jobs import JobState
from generation.services import endpoint_create
from tests.annotate import judge_fakesrv as fakesrv
from tests.annotate.test_judges import make_pairs

PAIRS = {f"t{i}": (f"Answer {i} X", f"Answer {i} Y") for i in range(4)}
_SECTIONS = re.compile(r"\[Response A\]\n\n(.*?)\n\n\[Response B\]", re.S)


def prefers_x(content: str, strength: int = 3) -> str:
    """A consistent judge: picks whichever response holds X."""
    first = _SECTIONS.search(content).group(1)
    return json.dumps({"verdict": "A" if "X" in first else "B", "strength": strength})


def make_judge(project, url, *, prices=("0.5", "1.0"), max_retries=0, name="j"):
    endpoint = endpoint_create(
        name=f"ep-{project.pk}-{name}",
        backend="openai",
        model="m",
        config={"base_url": url, "max_retries": max_retries, "backoff_s": 0},
        project=project,
    )
    return judge_create(
        project=project,
        name=name,
        endpoint=endpoint,
        price_prompt_per_1k=prices[0],
        price_completion_per_1k=prices[1],
    )


def by_name(qs, *fields):
    return sorted(qs.values_list("task__prompt__external_id", *fields))


# --- 1. verdicts the project does not allow ------------------------------------------------------


def routing_project(make_project, pairs: dict | None = None, **kw):
    """A project routing every pair the judges agree on (no audit share, any strength), with
    ``pairs`` (``make_pairs``) when given."""
    project = make_project(**kw)
    project_update_settings(project=project, judge_routing=True, judge_audit_share=0.0, judge_min_strength=1)
    project.refresh_from_db()
    if pairs is not None:
        make_pairs(project, pairs)
    return project


def no_tie_project(make_project, **kw):
    return routing_project(make_project, allow_tie=False, allow_both_bad=False, **kw)


def test_a_verdict_the_project_forbids_never_becomes_a_label(make_project, servers):
    project = no_tie_project(make_project)
    tasks = make_pairs(project, PAIRS)

    def answer(content):
        if "Answer 0" in content:
            return '{"verdict": "tie"}'
        if "Answer 1" in content:
            return '{"verdict": "both_bad"}'
        return prefers_x(content)

    url, _ = servers(default=fakesrv.answering(answer))
    job = judge_job_run(job_id=judge_job_create(judge=make_judge(project, url)).pk, chunk=2)
    assert job.state == JobState.DONE

    decisions = by_name(RoutingDecision.objects.filter(project=project), "route", "reason")
    assert decisions == [
        ("t0", "human", "verdict_not_allowed"),
        ("t1", "human", "verdict_not_allowed"),
        ("t2", "judge", "confident"),
        ("t3", "judge", "confident"),
    ]
    assert by_name(Annotation.objects.filter(task__project=project, source="judge"), "choice") == [
        ("t2", "a"),
        ("t3", "a"),
    ]
    # the suggestion says why, and keeps what the judge answered
    s = JudgeSuggestion.objects.get(job=job, task=tasks["t0"])
    assert (s.status, s.choice, s.verdict_first, s.verdict_swapped) == ("not_allowed", "", "tie", "tie")
    assert "tie" in s.error and "does not allow" in s.error
    s = JudgeSuggestion.objects.get(job=job, task=tasks["t1"])
    assert (s.status, s.choice, s.verdict_first) == ("not_allowed", "", "both_bad")
    # the forbidden tasks stay in the human queue
    for name in ("t0", "t1"):
        task = Task.objects.get(pk=tasks[name].pk)
        assert task.claims == 0 and task.target_labels == project.overlap


def test_the_rubric_offers_only_the_verdicts_the_project_allows(make_project):
    strict, _ = rubric_for(make_project(allow_tie=False, allow_both_bad=False))
    assert '"tie"' not in strict and '"both_bad"' not in strict and '"A" | "B"' in strict
    loose, _ = rubric_for(make_project(allow_tie=True, allow_both_bad=True))
    assert '"tie"' in loose and '"both_bad"' in loose


def test_a_tie_allowed_when_judged_but_forbidden_when_routed_goes_to_humans(make_project, servers):
    """The project stops allowing ties after the job judged: routing and pre-annotation check the
    project's settings at the time they act."""
    project = make_project(allow_tie=True, allow_both_bad=True)
    tasks = make_pairs(project, {"t0": PAIRS["t0"]})
    url, _ = servers(default=fakesrv.answering(lambda c: '{"verdict": "tie"}'))
    job = judge_job_run(job_id=judge_job_create(judge=make_judge(project, url)).pk)
    s = JudgeSuggestion.objects.get(job=job)
    assert (s.status, s.choice) == ("ok", "tie")
    project_update_settings(
        project=project,
        allow_tie=False,
        judge_routing=True,
        judge_audit_share=0.0,
        judge_pre_annotation=True,
    )
    project.refresh_from_db()
    assert route_for(project, tasks["t0"], [s]) == ("human", "verdict_not_allowed")
    assert selectors.pre_annotation_for(task=Task.objects.get(pk=tasks["t0"].pk)) is None
    project_update_settings(project=project, allow_tie=True)
    project.refresh_from_db()
    assert route_for(project, tasks["t0"], [s]) == ("judge", "confident")


# --- 6. messy or hostile answers -----------------------------------------------------------------

HOSTILE = [
    '{"verdict": "A", "strength": 1e400}',
    '{"verdict": "A", "strength": -1e400}',
    '{"verdict": "A", "strength": NaN}',
    '{"verdict": "A", "strength": Infinity}',
    '{"verdict": "B", "strength": "nan"}',
    '{"verdict": "A", "strength": "Infinity"}',
    '{"verdict": "A", "strength": "1e400"}',
    '{"verdict": "A", "strength": ' + "9" * 400 + "}",
    '{"verdict": "A", "strength": ' + "9" * 5000 + "}",
    '{"verdict": "A", "strength": 2, "scores": {"h": {"A": 1e400, "B": NaN}}}',
    '{"verdict": "A", "strength": 2, "scores": {"h": {"A": ' + "9" * 400 + ', "B": 2}}}',
    '{"verdict": "A", "strength": 2, "scores": {"h": [1, 2]}, "rationale": {"x": 1}}',
    '{"verdict": "A", "strength": 2, "scores": "many"}',
    '{"verdict": ["A"]}',
    '{"verdict": {"A": 1}}',
    '{"verdict": null}',
    '{"verdict": 1e400}',
    '{"verdict": "A", "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "[" * 100_000,
    "{" * 100_000,
    '{"a":' * 50_000,
    '{"verdict": "A", "n": ' + "{" * 3000 + "}" * 3000 + "}",
    '{"verdict": "\ud800", "strength": 2}',
    '{"verdict": "A\\u0000"}',
    "\x00{\x00}",
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_the_parser_never_raises_anything_but_unparseable(text):
    try:
        j = rb.parse_judgment(text, dimensions=["h"], scale_max=5)
    except rb.UnparseableJudgment:
        return
    assert j.verdict in ("a", "b", "tie", "both_bad")
    assert j.strength is None or j.strength in (1, 2, 3)
    for pair in j.scores.values():
        assert all(1 <= v <= 5 for v in pair.values())


def test_a_non_finite_strength_is_ignored_and_the_verdict_kept():
    for text in HOSTILE[:8]:  # (5,000 digits: more than Python converts, so unparseable)
        j = rb.parse_judgment(text, dimensions=[], scale_max=5)
        assert j.verdict in ("a", "b") and j.strength is None, text


def test_the_parser_is_quick_on_a_long_answer_full_of_braces():
    text = '{"a": [' * 2000 + "x" + "{" * 50_000 + ' {"verdict": "A"}'
    t0 = time.perf_counter()
    with contextlib.suppress(rb.UnparseableJudgment):
        rb.parse_judgment(text, dimensions=[], scale_max=5)
    assert time.perf_counter() - t0 < 5


def test_a_messy_answer_does_not_fail_the_job(make_project, servers):
    project = make_project()
    tasks = make_pairs(project, PAIRS)

    def answer(content):
        if "Answer 1" in content:
            return '{"verdict": "A", "strength": 1e400}'
        if "Answer 2" in content:
            return '{"verdict": "A", "x": ' + "[" * 50_000 + "]" * 50_000 + "}"
        return prefers_x(content, strength=2)

    url, _ = servers(default=fakesrv.answering(answer))
    job = judge_job_run(job_id=judge_job_create(judge=make_judge(project, url)).pk, chunk=2)
    assert (job.state, job.error, job.done_units) == (JobState.DONE, "", 4)
    assert JudgeSuggestion.objects.get(job=job, task=tasks["t0"]).status == "ok"
    s = JudgeSuggestion.objects.get(job=job, task=tasks["t1"])
    assert s.strength is None and s.verdict_first == "a"  # the strength ignored, the verdict kept


def test_absurd_token_counts_from_the_server_are_unknown_not_a_failed_job(make_project, servers):
    project = make_project()
    make_pairs(project, {"t0": PAIRS["t0"], "t1": PAIRS["t1"]})
    usage = {"prompt_tokens": 10**30, "completion_tokens": -5}
    url, _ = servers(default=fakesrv.answering(prefers_x, usage=usage))
    job = judge_job_run(job_id=judge_job_create(judge=make_judge(project, url)).pk)
    assert job.state == JobState.DONE and job.done_units == 2
    assert set(JudgeSuggestion.objects.filter(job=job).values_list("prompt_tokens", "completion_tokens")) == {
        (None, None)
    }


# --- 7. no token usage reported ------------------------------------------------------------------


def test_cost_is_unknown_not_zero_when_the_server_reports_no_usage(make_project, servers, client, make_user):
    from annotate.services.projects import membership_add

    project = make_project()
    make_pairs(project, PAIRS)
    url, _ = servers(default=fakesrv.answering(prefers_x, usage=False))
    job = judge_job_run(job_id=judge_job_create(judge=make_judge(project, url)).pk, chunk=2)
    job.refresh_from_db()
    rows = set(
        JudgeSuggestion.objects.filter(job=job).values_list("prompt_tokens", "completion_tokens", "cost")
    )
    assert rows == {(None, None, None)}
    assert job.cost is None and job.usage_missing_units == 4
    assert (job.prompt_tokens, job.completion_tokens) == (0, 0)

    manager = make_user("usage-boss")
    membership_add(project=project, user=manager, role="manager")
    client.force_login(manager)
    page = client.get(f"/projects/{project.slug}/judges/jobs/{job.pk}/").content.decode()
    summary = page.split('id="job-summary"')[1].split("</dl>")[0]
    assert "not reported by the server" in summary and "4 of 4" in summary
    assert "0.0000" not in page and "not priced" not in summary
    home = client.get(f"/projects/{project.slug}/judges/").content.decode()
    jobs_table = home.split('id="judge-jobs"')[1].split("</table>")[0]
    assert "not reported" in jobs_table and "0.0000" not in jobs_table


def test_partial_usage_totals_the_known_and_counts_the_unknown(make_project, servers):
    project = make_project()
    tasks = make_pairs(project, PAIRS)

    def usage_for(content):
        return "Answer 0" not in content

    def behaviour(handler, body):
        content = body["messages"][-1]["content"]
        fakesrv.send(handler, 200, fakesrv.completion(prefers_x(content), usage=usage_for(content)))

    url, _ = servers(default=behaviour)
    job = judge_job_run(job_id=judge_job_create(judge=make_judge(project, url)).pk, chunk=2)
    job.refresh_from_db()
    s = JudgeSuggestion.objects.get(job=job, task=tasks["t0"])
    assert (s.prompt_tokens, s.completion_tokens, s.cost) == (None, None, None)
    s = JudgeSuggestion.objects.get(job=job, task=tasks["t1"])
    assert (s.prompt_tokens, s.completion_tokens) == (22, 14) and s.cost is not None
    assert job.usage_missing_units == 1
    assert (job.prompt_tokens, job.completion_tokens) == (66, 42)
    assert job.cost == 3 * s.cost


# --- 8. transient failures -----------------------------------------------------------------------


@pytest.fixture
def no_retry_wait(monkeypatch):
    monkeypatch.setattr(judge_services, "TRANSIENT_RETRY_DELAYS_S", (0.0,), raising=False)


def come_back(job: JudgeJob, **kw) -> JudgeJob:
    """The job's message delivered again for its extra pass (what the outbox's countdown does)."""
    assert (
        job.retry_waiting and OutboxMessage.objects.filter(args=[job.pk], not_before__isnull=False).exists()
    )
    return judge_job_run(job_id=job.pk, **kw)


def test_a_brief_outage_is_judged_again_within_the_job(make_project, servers, no_retry_wait):
    project = routing_project(make_project, PAIRS)
    # the backend tries each request once: two 503s fail one or two tasks of the first chunk
    # (with backend retries, the 503s could all land on first tries and nothing would fail)
    url, _state = servers(script=[fakesrv.down] * 2, default=fakesrv.answering(prefers_x))
    job = judge_job_run(job_id=make_judge_job(project, url), chunk=2)
    assert job.state == JobState.RUNNING and 1 <= job.retry_units <= 2
    job = come_back(job, chunk=2)
    assert job.state == JobState.DONE and job.error == ""
    assert (job.done_units, job.failed_units) == (4, 0)
    assert set(JudgeSuggestion.objects.filter(job=job).values_list("status", flat=True)) == {"ok"}
    assert set(RoutingDecision.objects.filter(project=project).values_list("reason", flat=True)) == {
        "confident"
    }


def make_judge_job(project, url, **kw):
    return judge_job_create(judge=make_judge(project, url, **kw)).pk


def judged(make_project, servers, behaviour, *, tasks=("t0", "t1")) -> JudgeJob | None:
    """A judge job run, in chunks of two, over a fresh project's ``tasks`` (names in ``PAIRS``)
    against a fake model server answering every request with ``behaviour``; what the run returns."""
    project = make_project()
    make_pairs(project, {name: PAIRS[name] for name in tasks})
    url, _state = servers(default=behaviour)
    return judge_job_run(job_id=make_judge_job(project, url), chunk=2)


@pytest.fixture
def no_sleeping(monkeypatch):
    """Fails a test whose job holds its worker asleep (a backoff of under a second is the backend's)."""
    slept: list[float] = []

    def sleep(seconds):
        if seconds >= 1:
            slept.append(seconds)
            raise AssertionError(f"the worker was held asleep for {seconds} s")

    monkeypatch.setattr(time, "sleep", sleep)
    return slept


def test_a_transient_failure_frees_the_worker_until_the_job_comes_back(
    make_project, servers, no_sleeping, client, labeler_in
):
    """The job slept 15 s in the worker before its extra pass, holding a generation worker idle:
    now it stays running, forgets the failures, and the same job is delivered again after the delay."""
    project = routing_project(make_project, PAIRS)
    url, state = servers(default=fakesrv.down)
    job_id = make_judge_job(project, url)
    before = timezone.now()
    job = judge_job_run(job_id=job_id, chunk=2)
    assert no_sleeping == []
    assert job.state == JobState.RUNNING and job.error == ""
    assert job.retry_waiting and job.retry_units == 4 and job.retry_passes == 1
    delay = judge_services.TRANSIENT_RETRY_DELAYS_S[0]
    assert before + timedelta(seconds=delay) <= job.retry_at <= timezone.now() + timedelta(seconds=delay)
    # forgotten as before the extra pass: the tasks are judged again, nothing is routed yet
    assert not JudgeSuggestion.objects.filter(job=job).exists() and (job.done_units, job.failed_units) == (
        0,
        0,
    )
    assert not RoutingDecision.objects.filter(project=project).exists()
    # the same job, delivered again through the outbox, not before the delay
    message = OutboxMessage.objects.get(task_name="generation.judge_job_run", not_before__isnull=False)
    assert message.args == [job.pk] and message.not_before == job.retry_at

    client.force_login(labeler_in(project, "jo", role="manager"))
    page = client.get(f"/projects/{project.slug}/judges/jobs/{job.pk}/").content.decode()
    assert "Waiting to retry 4 tasks" in page and "Cancel this job" in page
    listing = client.get(f"/projects/{project.slug}/judges/").content.decode()
    assert "waiting to retry 4" in listing

    # the delayed message comes back; the server is up again by then
    state["default"] = fakesrv.answering(prefers_x)
    calls = len(state["requests"])
    job = judge_job_run(job_id=job.pk, chunk=2)
    assert no_sleeping == []
    assert job.state == JobState.DONE and (job.done_units, job.failed_units) == (4, 0)
    assert not job.retry_waiting
    assert len(state["requests"]) == calls + 8  # the four tasks, both orderings, once
    assert set(RoutingDecision.objects.filter(project=project).values_list("reason", flat=True)) == {
        "confident"
    }


def test_a_cancel_while_the_job_waits_for_its_extra_pass_stops_it(
    make_project, servers, no_sleeping, client, labeler_in
):
    project = routing_project(make_project, PAIRS)
    url, state = servers(default=fakesrv.down)
    job = judge_job_run(job_id=make_judge_job(project, url), chunk=2)
    assert job.retry_waiting
    client.force_login(labeler_in(project, "jo", role="manager"))
    response = client.post(f"/projects/{project.slug}/judges/jobs/{job.pk}/cancel/", follow=True)
    page = response.content.decode()
    assert "Cancelled" in page and "Waiting to retry" not in page
    calls = len(state["requests"])
    state["default"] = fakesrv.answering(prefers_x)
    job = judge_job_run(job_id=job.pk, chunk=2)  # the delayed message comes back: nothing to do
    assert job.state == JobState.CANCELLED and not job.retry_waiting
    assert len(state["requests"]) == calls and not JudgeSuggestion.objects.filter(job=job).exists()
    assert not RoutingDecision.objects.filter(project=project).exists()


def test_the_extra_pass_comes_back_through_the_outbox_and_the_celery_task(
    make_project, servers, no_sleeping, django_capture_on_commit_callbacks, monkeypatch, celery_eager
):
    """End to end in eager mode: the wait is a message (with its eta) to ``generation.judge_job_run``,
    sent after the commit that records it; the task runs the extra pass and the job ends."""
    from core import outbox

    project = make_project()
    make_pairs(project, PAIRS)
    url, _state = servers(script=[fakesrv.down] * 2, default=fakesrv.answering(prefers_x))
    judge = make_judge(project, url)
    sent = []
    send_task = outbox.send_task
    monkeypatch.setattr(
        outbox,
        "send_task",
        lambda name, args, **kw: (sent.append((name, args, kw)), send_task(name, args, **kw)),
    )
    with django_capture_on_commit_callbacks(execute=True):
        job = judge_job_create(judge=judge)
    job.refresh_from_db()
    assert job.state == JobState.DONE and (job.done_units, job.failed_units) == (4, 0)
    assert [(name, args) for name, args, _ in sent] == [("generation.judge_job_run", [job.pk])] * 2
    assert sent[0][2] == {} and sent[1][2]["eta"] > job.started_at  # the second waits
    assert job.retry_passes == 1 and not OutboxMessage.objects.exists()


def test_a_long_outage_leaves_tasks_unrouted_and_retry_failed_judges_them(
    make_project, servers, no_retry_wait
):
    project = routing_project(make_project, PAIRS)
    url, state = servers(default=fakesrv.down)
    job = judge_job_run(job_id=make_judge_job(project, url), chunk=2)
    assert job.retry_waiting and job.retry_units == 4
    job = come_back(job, chunk=2)
    assert len(state["requests"]) == 16  # two passes over four tasks, both orderings: one extra pass
    assert job.state == JobState.FAILED and "retry" in job.error.lower()
    assert job.failed_units == 4 and job.retry_passes == 1 and not job.retry_waiting
    assert set(JudgeSuggestion.objects.filter(job=job).values_list("status", "transient")) == {
        ("failed", True)
    }
    # a failed call to an unreachable server decides nothing: the tasks stay with humans, undecided
    assert not RoutingDecision.objects.filter(project=project).exists()
    # a redelivered message leaves the finished job alone
    assert judge_job_run(job_id=job.pk).state == JobState.FAILED
    assert len(state["requests"]) == 16

    state["default"] = fakesrv.answering(prefers_x)
    job = judge_services.judge_job_retry_failed(job=job)
    assert job.state == JobState.QUEUED and job.failed_units == 0 and job.done_units == 0
    assert job.retry_passes == 0  # the re-queued run has its extra pass again
    assert OutboxMessage.objects.filter(task_name="generation.judge_job_run", args=[job.pk]).exists()
    job = judge_job_run(job_id=job.pk, chunk=2)
    assert job.state == JobState.DONE and (job.done_units, job.failed_units) == (4, 0)
    assert set(RoutingDecision.objects.filter(project=project).values_list("reason", flat=True)) == {
        "confident"
    }


def test_a_permanent_failure_stays_failed_and_is_not_retried(make_project, servers, no_retry_wait):
    project = make_project()
    make_pairs(project, {"t0": PAIRS["t0"], "t1": PAIRS["t1"]})

    def behaviour(handler, body):
        if "Answer 0" in body["messages"][-1]["content"]:
            return fakesrv.refused(handler, body)
        return fakesrv.answering(prefers_x)(handler, body)

    url, state = servers(default=behaviour)
    job = judge_job_run(job_id=make_judge_job(project, url))
    assert job.state == JobState.DONE and job.failed_units == 1
    failed = JudgeSuggestion.objects.get(job=job, status="failed")
    assert failed.transient is False and "refused" in failed.error
    calls = len(state["requests"])
    assert calls == 4  # two tasks, two orderings, no second pass for a refusal
    from annotate.errors import InvalidInput

    with pytest.raises(InvalidInput):
        judge_services.judge_job_retry_failed(job=job)


def test_the_job_page_cancels_a_running_job_and_retries_a_failed_one(
    make_project, servers, no_retry_wait, client, labeler_in
):
    """The retry existed as a service only, and a judge job could not be cancelled from any page."""
    project = make_project()
    make_pairs(project, PAIRS)
    manager = labeler_in(project, "jo", role="manager")
    client.force_login(manager)
    url, state = servers(default=fakesrv.down)
    queued = make_judge_job(project, url)
    page = client.get(f"/projects/{project.slug}/judges/jobs/{queued}/").content.decode()
    assert "Cancel this job" in page and "Retry the" not in page
    response = client.post(f"/projects/{project.slug}/judges/jobs/{queued}/cancel/", follow=True)
    assert response.status_code == 200 and "Cancelled" in response.content.decode()
    assert JudgeJob.objects.get(pk=queued).state == JobState.CANCELLED

    job = come_back(judge_job_run(job_id=make_judge_job(project, url, name="j2"), chunk=2), chunk=2)
    assert job.state == JobState.FAILED
    page = client.get(f"/projects/{project.slug}/judges/jobs/{job.pk}/").content.decode()
    assert "Retry the 4 failed tasks" in page and "Cancel this job" not in page
    state["default"] = fakesrv.answering(prefers_x)
    response = client.post(f"/projects/{project.slug}/judges/jobs/{job.pk}/retry/", follow=True)
    assert response.status_code == 200 and "Queued again" in response.content.decode()
    assert JudgeJob.objects.get(pk=job.pk).state == JobState.QUEUED
    again = client.post(f"/projects/{project.slug}/judges/jobs/{job.pk}/retry/", follow=True)
    assert "finished" in again.content.decode()  # a queued job is not retried twice: the refusal is said


def test_each_suggestion_records_the_model_version_that_answered_it(make_project, servers):
    """The judge read the backend's model_version once, before its first call: every suggestion got
    the version of the backend's previous call (empty on a fresh backend), not the one that judged."""

    def versioned(handler, body):
        payload = fakesrv.completion(prefers_x(body["messages"][-1]["content"]))
        payload["system_fingerprint"] = "fp-2026-12"
        fakesrv.send(handler, 200, payload)

    job = judged(make_project, servers, versioned, tasks=["t0"])
    assert job.state == JobState.DONE
    assert set(JudgeSuggestion.objects.filter(job=job).values_list("model_version", flat=True)) == {
        "fp-2026-12"
    }


def test_tasks_judged_in_one_call_record_their_own_answers_version(make_project, servers):
    """Two tasks judged in one call, answered under different versions (a server redeployed while
    the call's requests were in flight): each suggestion records the version its answers reported,
    not the backend's latest (which gave both tasks the same one)."""
    import itertools
    import threading

    counter, lock = itertools.count(1), threading.Lock()

    def versioned(handler, body):
        with lock:
            n = next(counter)
        payload = fakesrv.completion(prefers_x(body["messages"][-1]["content"]))
        payload["system_fingerprint"] = f"fp-{n}"
        fakesrv.send(handler, 200, payload)

    job = judged(make_project, servers, versioned)
    assert job.state == JobState.DONE
    versions = list(JudgeSuggestion.objects.filter(job=job).values_list("model_version", flat=True))
    assert len(versions) == 2 and len(set(versions)) == 2 and all(v.startswith("fp-") for v in versions)


@pytest.mark.parametrize("message", ["bad \u0000 request", "bad \ud800 request"])
def test_a_server_error_text_that_cannot_be_stored_fails_its_task_not_the_job(make_project, servers, message):
    """A model server's error message with a NUL or a lone surrogate failed the whole judge job at
    the write (UnicodeEncodeError / DataError), with no suggestion stored."""
    job = judged(make_project, servers, fakesrv.refusing(400, message), tasks=["t0"])
    assert (
        job.state in (JobState.DONE, JobState.FAILED) and "Encode" not in job.error and "NUL" not in job.error
    )
    (suggestion,) = JudgeSuggestion.objects.filter(job=job)
    assert suggestion.status == "failed" and "bad" in suggestion.error and "\x00" not in suggestion.error


def test_switching_the_endpoint_off_stops_its_judge_job(make_project, servers, monkeypatch):
    """Switching an endpoint off stopped new judge jobs from choosing it, but a running one went on
    calling it to the end. The job now stops before its next chunk, cancelled with the reason; what
    it judged stays."""
    from generation import backends
    from generation.services import endpoint_update

    project = routing_project(make_project, PAIRS)
    url, state = servers(default=fakesrv.answering(prefers_x))
    job_id = make_judge_job(project, url)
    real_get_backend = backends.get_backend

    def switched_off_after_first_call(endpoint):
        backend = real_get_backend(endpoint)
        generate = backend.generate

        def once_then_off(conversations, params):
            out = generate(conversations, params)
            endpoint_update(endpoint=endpoint, is_active=False)
            return out

        monkeypatch.setattr(backend, "generate", once_then_off)
        return backend

    monkeypatch.setattr(backends, "get_backend", switched_off_after_first_call)
    job = judge_job_run(job_id=job_id, chunk=2)
    assert job.state == JobState.CANCELLED and "switched off" in job.error
    assert JudgeSuggestion.objects.filter(job=job).count() == 2  # the first chunk's two tasks
    assert len(state["requests"]) == 4  # two tasks, both orders: nothing after the switch-off
