"""AI judges: swap consistency, suggestions with provenance, costs and routing decisions, against a
deterministic fake judge served by a real OpenAI-compatible HTTP server (the ``openai`` backend),
and the tiny model through the real transformers backend (garbage JSON: recorded, never a crash)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db.models import F

from annotate.judges import rubric as rb
from annotate.judges.services import (
    judge_create,
    judge_job_create,
    judge_job_run,
    route_for,
    routing_apply_now,
)
from annotate.models import (
    Annotation,
    Candidate,
    JudgeSuggestion,
    OutboxMessage,
    Prompt,
    RoutingDecision,
    Task,
)
from annotate.models_judges import SuggestionStatus
from annotate.services.guidelines import guideline_publish
from annotate.services.leasing import task_claim_next
from annotate.services.projects import project_update_settings
from annotate.services.tasks import TaskSpec, tasks_bulk_create
from core.jobs import JobState
from generation.openai_server import serve_in_thread
from generation.services import endpoint_create
from tests.annotate.judge_fakes import RATIONALE, FakeJudgeBackend

PAIRS = {  # name: (text of slot 0, text of slot 1)
    "a_much_better": ("Answer q=5", "Answer q=1"),
    "b_much_better": ("Answer q=1", "Answer q=4"),
    "weak": ("Answer q=3", "Answer q=2"),
    "left_bias": ("LEFTBIAS q=3", "Answer q=3"),
    "garbage": ("GARBAGE q=3", "Answer q=1"),
}


def make_pairs(project, pairs=PAIRS) -> dict[str, Task]:
    out = {}
    for name, (t0, t1) in pairs.items():
        prompt = Prompt.objects.create(
            project=project, external_id=name, messages=[{"role": "user", "content": f"Question {name}?"}]
        )
        c0 = Candidate.objects.create(prompt=prompt, text=t0, model_name="m0")
        c1 = Candidate.objects.create(prompt=prompt, text=t1, model_name="m1")
        (task,) = tasks_bulk_create(
            project=project, specs=[TaskSpec(prompt_id=prompt.pk, candidate_ids=[c0.pk, c1.pk])]
        )
        out[name] = task
    return out


@pytest.fixture
def fake_server(settings):
    settings.PREFHUB_ALLOWED_MODEL_HOSTS = ["127.0.0.1"]
    backend = FakeJudgeBackend()
    server, url = serve_in_thread(backend, served_model_name="fake-judge")
    yield backend, url
    server.shutdown()
    server.server_close()


@pytest.fixture
def judged(make_project, make_user, fake_server):
    """A project with a guideline, one dimension, routing on (no audit share), a fake judge with
    prices, and a finished judge job over PAIRS."""
    _backend, url = fake_server
    manager = make_user("boss")
    project = make_project(dimensions=[{"key": "helpfulness", "label": "Helpfulness"}])
    guideline_publish(project=project, actor=manager, body="Prefer the **more helpful** answer.")
    project_update_settings(project=project, judge_routing=True, judge_audit_share=0.0, judge_min_strength=2)
    project.refresh_from_db()
    tasks = make_pairs(project)
    endpoint = endpoint_create(
        name="fake-judge-ep", backend="openai", model="fake-judge", config={"base_url": url}, project=project
    )
    judge = judge_create(
        project=project,
        name="Judge One",
        endpoint=endpoint,
        price_prompt_per_1k="0.5",
        price_completion_per_1k="1.0",
        actor=manager,
    )
    job = judge_job_create(judge=judge, actor=manager)
    job = judge_job_run(job_id=job.pk, chunk=2)
    return project, judge, job, tasks


def suggestion(job, task) -> JudgeSuggestion:
    return JudgeSuggestion.objects.get(job=job, task=task)


def test_job_is_enqueued_through_the_outbox_by_task_name(make_project, fake_server):
    project = make_project()
    make_pairs(project, {"one": ("q=2", "q=1")})
    endpoint = endpoint_create(
        name="ep-outbox", backend="openai", model="fake-judge", config={"base_url": fake_server[1]}
    )
    judge = judge_create(project=project, name="j", endpoint=endpoint)
    job = judge_job_create(judge=judge)
    assert job.state == JobState.QUEUED and job.total_units == 1
    assert OutboxMessage.objects.filter(task_name="generation.judge_job_run", args=[job.pk]).exists()


def test_each_pair_is_judged_twice_with_positions_swapped(judged, fake_server):
    _project, _judge, job, tasks = judged
    backend, _ = fake_server
    assert backend.calls == 2 * len(PAIRS)
    s = suggestion(job, tasks["a_much_better"])
    assert (s.status, s.choice, s.strength) == (SuggestionStatus.OK, "a", 3)
    assert s.verdict_first == s.verdict_swapped == "a"
    s = suggestion(job, tasks["b_much_better"])
    assert (s.status, s.choice, s.verdict_first, s.verdict_swapped) == ("ok", "b", "b", "b")
    # the fake always says "A": canonical a when slot 0 is shown first, b when swapped
    s = suggestion(job, tasks["left_bias"])
    assert (s.status, s.choice, s.verdict_first, s.verdict_swapped) == ("inconsistent", "", "a", "b")
    assert s.strength is None


def test_unparseable_answer_is_recorded_with_its_raw_text(judged):
    _project, _judge, job, tasks = judged
    s = suggestion(job, tasks["garbage"])
    assert s.status == SuggestionStatus.UNPARSEABLE and s.choice == ""
    assert "hard to say" in s.raw_first and "hard to say" in s.raw_swapped
    assert "No JSON object" in s.error
    assert job.state == JobState.DONE


def test_suggestions_carry_scores_per_candidate_and_provenance(judged):
    _project, judge, job, tasks = judged
    task = tasks["a_much_better"]
    c0, c1 = task.slots.order_by("slot").values_list("candidate_id", flat=True)
    s = suggestion(job, task)
    assert s.scores == {"helpfulness": {str(c0): 5.0, str(c1): 1.0}}
    assert s.rationale == RATIONALE
    assert s.endpoint == judge.endpoint and s.model_name == "fake-judge"
    assert s.rubric_version == 1 and job.rubric_version == 1
    assert "more helpful" in job.rubric and "helpfulness" in job.rubric
    assert s.sampling["temperature"] == 0.0 and s.sampling["n"] == 1
    assert '"verdict"' in s.raw_first


def test_costs_tokens_and_seconds(judged):
    _project, _judge, job, tasks = judged
    s = suggestion(job, tasks["weak"])
    # two calls of 100 prompt + 20 completion tokens: 200 * 0.5/1k + 40 * 1.0/1k
    assert (s.prompt_tokens, s.completion_tokens) == (200, 40)
    assert s.cost == Decimal("0.140000")
    assert s.seconds >= 0
    assert job.prompt_tokens == 200 * len(PAIRS) and job.completion_tokens == 40 * len(PAIRS)
    assert job.cost == Decimal("0.14") * len(PAIRS)
    assert job.done_units == job.total_units == len(PAIRS)


def test_routing_decisions_and_reasons(judged, labeler_in):
    project, judge, _job, tasks = judged
    reasons = {
        name: (d.route, d.reason)
        for name, d in ((n, RoutingDecision.objects.get(task=t)) for n, t in tasks.items())
    }
    assert reasons == {
        "a_much_better": ("judge", "confident"),
        "b_much_better": ("judge", "confident"),
        "weak": ("human", "low_strength"),
        "left_bias": ("human", "inconsistent"),
        "garbage": ("human", "unparsed"),
    }
    # judge-labeled tasks leave the human queue, with claims <= target_labels intact
    for name in ("a_much_better", "b_much_better"):
        task = Task.objects.get(pk=tasks[name].pk)
        assert task.claims == task.target_labels == 1
        ann = Annotation.objects.get(task=task)
        assert ann.source == "judge" and ann.labeler_id == judge.user_id
        assert ann.choice == ("a" if name == "a_much_better" else "b") and ann.strength == 3
    human_tasks = {tasks[n].pk for n in ("weak", "left_bias", "garbage")}
    open_ids = set(
        Task.objects.filter(project=project, claims__lt=F("target_labels")).values_list("id", flat=True)
    )
    assert open_ids == human_tasks
    human = labeler_in(project)
    for _ in range(2):  # a labeler holds at most two leases; both are human-routed tasks
        assert task_claim_next(project=project, labeler=human).task_id in human_tasks
    assert not judge.user.is_active and not judge.user.has_usable_password()


def test_audit_share_keeps_human_slots_and_adds_the_judges_vote(judged):
    project, judge, _job, _tasks = judged
    project_update_settings(project=project, judge_audit_share=1.0)
    (fresh,) = make_pairs(project, {"fresh": ("Answer q=5", "Answer q=1")}).values()
    job = judge_job_run(job_id=judge_job_create(judge=judge, task_ids=[fresh.pk]).pk)
    assert job.state == JobState.DONE
    d = RoutingDecision.objects.get(task=fresh)
    assert (d.route, d.reason, d.job_id) == ("human", "audit", job.pk)
    fresh.refresh_from_db()
    # the judge's vote sits beside the humans': one claim taken, the human slot still open
    assert (fresh.claims, fresh.target_labels) == (1, 2)
    assert Annotation.objects.get(task=fresh).source == "judge"
    # decisions are made once: routing again changes nothing
    assert routing_apply_now(project=project) == 0


def test_judges_disagreeing_send_the_pair_to_humans(judged):
    project, judge, job, tasks = judged
    s = suggestion(job, tasks["a_much_better"])
    other = JudgeSuggestion(judge=judge, job=job, task=s.task, status="ok", choice="b", strength=3)
    assert route_for(project, s.task, [s, other]) == ("human", "judges_disagree")
    assert route_for(project, s.task, [s]) == ("judge", "confident")


def test_parser_is_robust():
    dims = ["helpfulness"]
    j = rb.parse_judgment(
        'noise {"x": 1} then {"verdict": "both bad", "strength": 9}', dimensions=dims, scale_max=5
    )
    assert (j.verdict, j.strength) == ("both_bad", None)
    j = rb.parse_judgment(
        '{"verdict": "B", "strength": "2", "scores": {"helpfulness": {"A": 9, "B": 2}}}',
        dimensions=dims,
        scale_max=5,
    )
    assert (j.verdict, j.strength, j.scores) == ("b", 2, {})
    for bad in ("", "{", '{"verdict": "maybe"}', "[1, 2]", '{"verdict": 3}'):
        with pytest.raises(rb.UnparseableJudgment):
            rb.parse_judgment(bad, dimensions=dims, scale_max=5)


@pytest.mark.slow
def test_tiny_model_through_the_transformers_backend_is_recorded_as_unparseable(
    make_project, tiny_model_path
):
    project = make_project()
    project_update_settings(project=project, judge_routing=True)
    project.refresh_from_db()
    tasks = make_pairs(project, {"one": ("Answer q=2", "Answer q=1"), "two": ("q=1", "q=3")})
    endpoint = endpoint_create(
        name="tiny-judge", backend="transformers", model=tiny_model_path, config={"device": "cpu"}
    )
    judge = judge_create(project=project, name="tiny", endpoint=endpoint, sampling={"max_new_tokens": 24})
    job = judge_job_run(job_id=judge_job_create(judge=judge).pk)
    assert job.state == JobState.DONE
    for task in tasks.values():
        s = JudgeSuggestion.objects.get(job=job, task=task)
        assert s.status == SuggestionStatus.UNPARSEABLE and s.choice == ""
        assert s.raw_first or s.raw_swapped  # the garbage text is kept
        assert s.completion_tokens > 0 and s.cost is None
        assert RoutingDecision.objects.get(task=task).reason == "unparsed"


def _export_rows(project, fmt, options):
    import json
    from pathlib import Path

    from training.services.exports import export_create, export_run

    export = export_run(
        export_id=export_create(
            project=project, format=fmt, options={"test_size": 0, **options}, enqueue=False
        ).pk
    )
    assert export.state == "done", export.error
    return export, [json.loads(x) for x in (Path(export.path) / "train.jsonl").read_text().splitlines()]


def test_exports_mark_judge_labeled_rows_and_can_exclude_them(judged, labeler_in):
    project, _judge, _job, tasks = judged
    human = labeler_in(project)
    # a human labels one human-routed task (imported-style, straight into the table)
    Annotation.objects.create(task=tasks["weak"], labeler=human, choice="a", strength=2)
    _, rows = _export_rows(project, "trl", {"labeled_by": True})
    assert sorted(r["labeled_by"] for r in rows) == ["human", "judge", "judge"]
    assert {r["chosen"] for r in rows if r["labeled_by"] == "judge"} == {"Answer q=5", "Answer q=4"}
    _, rows = _export_rows(project, "trl", {"labeled_by": True, "judge_labels": "exclude"})
    assert [r["labeled_by"] for r in rows] == ["human"]
    _, raw = _export_rows(project, "raw", {})
    assert sorted(r["source"] for r in raw) == ["human", "judge", "judge"]


def test_judges_enter_the_reliability_model_marked_as_judges(judged, labeler_in):
    project, _judge, _job, tasks = judged
    human = labeler_in(project)
    Annotation.objects.create(task=tasks["a_much_better"], labeler=human, choice="a", strength=3)
    export, rows = _export_rows(
        project, "trl", {"aggregate": "weighted", "soft_labels": True, "labeled_by": True}
    )
    model = export.manifest["reliability_model"]
    judges = [r for r in model["labelers"] if r["is_judge"]]
    assert len(judges) == 1 and len(model["judges"]) == 1 and judges[0]["labeler"] == model["judges"][0]
    assert judges[0]["labels"] == 2 and judges[0]["weight"] > 0
    assert {r["labeled_by"] for r in rows} == {"judge", "mixed"}


def test_labelers_see_judge_output_only_with_pre_annotation_and_it_is_recorded(judged, labeler_in, client):
    import json
    import re

    from annotate.models import Assignment, Guideline
    from annotate.services.guidelines import guideline_acknowledge

    project, _judge, _job, tasks = judged
    human = labeler_in(project)
    guideline_acknowledge(guideline=Guideline.objects.get(project=project), user=human)
    client.force_login(human)
    html = client.get(f"/projects/{project.slug}/label/").content.decode()
    assert "data-pre-annotation" not in html and "__judge_xss" not in html
    assert not re.search(r'name="(choice|strength)" value="[^"]+" checked', html)

    project_update_settings(project=project, judge_pre_annotation=True)
    html = client.get(f"/projects/{project.slug}/label/").content.decode()
    lease = Assignment.objects.get(labeler=human, state="live")
    assert lease.task_id == tasks["weak"].pk  # judged "a", strength 1
    slot0 = tasks["weak"].slots.get(slot=0).candidate_id
    side = "left" if lease.shown_order[0] == slot0 else "right"
    assert f'value="{side}" checked' in html and 'name="strength" value="1" checked' in html
    assert "data-pre-annotation" in html
    assert "&lt;script&gt;window.__judge_xss" in html and "<script>window.__judge_xss" not in html

    response = client.post(
        f"/projects/{project.slug}/label/{lease.pk}/submit/",
        data=json.dumps({"choice": side, "strength": 1}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    ann = Annotation.objects.get(task=tasks["weak"], labeler=human)
    assert ann.pre_annotated and ann.choice == "a"
    # a task without a consistent suggestion is not marked
    html = client.get(f"/projects/{project.slug}/label/").content.decode()
    lease = Assignment.objects.get(labeler=human, state="live")
    assert lease.task_id == tasks["left_bias"].pk and "data-pre-annotation" not in html


def test_report_shows_judge_human_agreement_beside_human_human(judged, labeler_in):
    from annotate.services.reports import report_build

    project, judge, _job, tasks = judged
    h1, h2, h3 = (labeler_in(project) for _ in range(3))
    ratings = lambda task, a, b: {  # noqa: E731
        "helpfulness": {
            str(c): v
            for c, v in zip(
                task.slots.order_by("slot").values_list("candidate_id", flat=True), (a, b), strict=True
            )
        }
    }
    t_a, t_b, t_weak = tasks["a_much_better"], tasks["b_much_better"], tasks["weak"]
    rows = [
        (t_a, h1, "a", ratings(t_a, 5, 1)),
        (t_a, h2, "a", ratings(t_a, 4, 2)),
        (t_a, h3, "b", ratings(t_a, 1, 2)),
        (t_b, h1, "a", ratings(t_b, 3, 2)),  # the humans overrule the judge here
        (t_b, h2, "a", ratings(t_b, 3, 1)),
        (t_weak, h1, "a", {}),
        (tasks["left_bias"], h1, "b", {}),  # the judge was uncertain: not counted
    ]
    for task, user, choice, r in rows:
        Annotation.objects.create(task=task, labeler=user, choice=choice, ratings=r)
    report = report_build(project, bootstrap=50)
    # the judge's own annotations (two judge-routed tasks) are not human labels
    assert report["totals"]["annotations"] == len(rows) and report["totals"]["labelers"] == 3
    block = report["judges"]
    (j,) = block["judges"]
    assert j["judge"] == judge.name and j["uncertain"] == 1 and j["consistent"] == 3
    assert j["vs_majority"]["n"] == 3 and j["vs_majority"]["agreement"] == round(2 / 3, 4)
    low, high = j["vs_majority"]["low"], j["vs_majority"]["high"]
    assert 0 <= low <= j["vs_majority"]["agreement"] <= high <= 1
    per = {r["username"]: r for r in j["vs_labelers"]}
    assert (per[h1.username]["n"], per[h1.username]["agreement"]) == (3, round(2 / 3, 4))
    assert (per[h3.username]["n"], per[h3.username]["agreement"]) == (1, 0.0)
    (dim,) = j["by_dimension"]
    assert dim["key"] == "helpfulness" and dim["n"] == 2 and dim["agreement"] == 0.5
    # human-human beside it: each label vs the others' majority on tasks with 2+ humans
    # (3 humans on one task: only the dissenter has a unique majority among the others)
    assert block["human_vs_majority"]["n"] == 3 and block["human_vs_majority"]["agreement"] == round(2 / 3, 4)


def test_the_outbox_runs_the_job_by_task_name_on_the_generation_queue(
    make_project, fake_server, django_capture_on_commit_callbacks, settings, celery_eager
):
    app = celery_eager
    app.loader.import_default_modules()
    assert "generation.judge_job_run" in app.tasks
    assert settings.CELERY_TASK_ROUTES["generation.*"] == {"queue": "generation"}
    project = make_project()
    make_pairs(project, {"one": ("Answer q=3", "Answer q=1")})
    endpoint = endpoint_create(
        name="ep-eager", backend="openai", model="fake-judge", config={"base_url": fake_server[1]}
    )
    judge = judge_create(project=project, name="eager", endpoint=endpoint)
    with django_capture_on_commit_callbacks(execute=True):
        job = judge_job_create(judge=judge)
    job.refresh_from_db()
    assert job.state == JobState.DONE and job.done_units == 1
    assert not OutboxMessage.objects.filter(task_name="generation.judge_job_run").exists()
    # a redelivered message finds the job finished and writes nothing twice
    assert judge_job_run(job_id=job.pk).state == JobState.DONE
    assert JudgeSuggestion.objects.filter(job=job).count() == 1


def test_a_server_that_is_down_fails_the_job_with_a_message(make_project, settings, monkeypatch):
    import socket

    from annotate.judges import services

    monkeypatch.setattr(services, "TRANSIENT_RETRY_DELAYS_S", (0.0,))
    settings.PREFHUB_ALLOWED_MODEL_HOSTS = ["127.0.0.1"]
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    project = make_project()
    make_pairs(project, {"one": ("q=2", "q=1"), "two": ("q=1", "q=2")})
    endpoint = endpoint_create(
        name="ep-down",
        backend="openai",
        model="fake-judge",
        config={"base_url": f"http://127.0.0.1:{port}/v1", "max_retries": 0, "backoff_s": 0},
    )
    judge = judge_create(project=project, name="down", endpoint=endpoint)
    job = judge_job_run(job_id=judge_job_create(judge=judge).pk)
    assert job.retry_waiting  # its message comes back after the delay, for one extra pass
    job = judge_job_run(job_id=job.pk)
    assert job.state == JobState.FAILED and "Every task failed" in job.error
    assert job.failed_units == 2
    assert set(JudgeSuggestion.objects.filter(job=job).values_list("status", "transient")) == {
        ("failed", True)
    }
    assert all(s.error for s in JudgeSuggestion.objects.filter(job=job))
    assert "could not be reached" in job.error


def test_pages_are_for_managers_and_researchers_and_bad_input_is_a_4xx(judged, labeler_in, client):
    project, judge, job, tasks = judged
    labeler = labeler_in(project)
    client.force_login(labeler)
    assert client.get(f"/projects/{project.slug}/judges/").status_code == 403
    assert client.get(f"/projects/{project.slug}/judges/jobs/{job.pk}/").status_code == 403
    researcher = labeler_in(project, role="researcher")
    client.force_login(researcher)
    page = client.get(f"/projects/{project.slug}/judges/jobs/{job.pk}/").content.decode()
    assert "&lt;script&gt;window.__judge_xss" in page and "<script>window.__judge_xss" not in page
    # researchers run judges but do not change project settings
    assert (
        client.post(f"/projects/{project.slug}/judges/settings/", {"judge_audit_share": "0.5"}).status_code
        == 403
    )
    response = client.post(f"/projects/{project.slug}/judges/new/", {"name": "x", "endpoint": "999999"})
    assert response.status_code == 400 and "Select a valid choice" in response.content.decode()
    response = client.post(f"/projects/{project.slug}/judges/{judge.pk}/run/", {"limit": "lots"}, follow=True)
    assert response.status_code == 200 and "whole number" in response.content.decode()
    # the agreement report page renders the judges block
    Annotation.objects.create(task=tasks["weak"], labeler=labeler, choice="a")
    report = client.get(f"/reports/{project.slug}/")
    assert report.status_code == 200
    assert "AI judges vs humans" in report.content.decode() and judge.name in report.content.decode()


@pytest.mark.parametrize(
    "sampling",
    ['{"stop": ["\\u0000"]}', '{"stop": ["a\\u0000b"], "temperature": 0}', "[" * 100_000],
    ids=["nul-escape", "nul-inside", "nested-too-deeply"],
)
def test_judge_sampling_with_a_nul_or_deep_nesting_is_a_400_not_a_500(
    make_project, labeler_in, client, sampling
):
    """The judges page parses its sampling JSON like every other untrusted JSON: a NUL (which jsonb
    cannot store) or nesting too deep for Python is a form error, and no judge is created."""
    from annotate.models import Judge
    from generation.models import ModelEndpoint

    project = make_project()
    client.force_login(labeler_in(project, role="manager"))
    endpoint = ModelEndpoint.objects.create(name="nul-ep", backend="openai", model="m", project=project)
    response = client.post(
        f"/projects/{project.slug}/judges/new/",
        {"name": "nul-judge", "endpoint": endpoint.pk, "sampling": sampling},
    )
    assert response.status_code == 400
    assert not Judge.objects.filter(project=project).exists()


def test_judge_create_refuses_a_nul_in_sampling(make_project):
    from annotate.errors import InvalidInput
    from generation.models import ModelEndpoint

    project = make_project()
    endpoint = ModelEndpoint.objects.create(name="nul-ep2", backend="openai", model="m", project=project)
    with pytest.raises(InvalidInput) as exc:
        judge_create(project=project, name="j", endpoint=endpoint, sampling={"stop": ["a\x00"]})
    assert exc.value.field == "sampling"


@pytest.mark.postgres(reason="the one-runner lock is a PostgreSQL advisory lock")
def test_a_judge_job_another_worker_is_running_is_left_to_it(make_project, fake_server):
    """The same message delivered to two workers at once: the second judges nothing (a priced judge
    is not paid twice) and leaves the job as it is; once the first is gone the job runs."""
    from annotate.models_judges import JudgeJob
    from tests.races import another_worker_runs

    backend, url = fake_server
    project = make_project()
    make_pairs(project, {"one": ("q=2", "q=1")})
    endpoint = endpoint_create(
        name="ep-alone", backend="openai", model="fake-judge", config={"base_url": url}
    )
    job = judge_job_create(judge=judge_create(project=project, name="j", endpoint=endpoint))
    with another_worker_runs(JudgeJob, job.pk):
        left = judge_job_run(job_id=job.pk)
    assert left.state == JobState.QUEUED and backend.calls == 0
    assert not JudgeSuggestion.objects.filter(job=job).exists()
    assert judge_job_run(job_id=job.pk).state == JobState.DONE and backend.calls > 0


def test_a_finished_job_routes_its_tasks_a_batch_per_transaction(
    make_project, make_user, fake_server, monkeypatch
):
    """Routing holds the tasks' rows (and the project's) only for a batch, not for the whole job;
    the audit event counts every task the job routed; a job cancelled between two batches stops
    routing there (the rest stay undecided, for humans)."""
    from annotate.judges import services as judge_services
    from annotate.models import AuditEvent, JudgeJob

    _backend, url = fake_server
    manager = make_user("batch-boss")
    project = make_project()
    project_update_settings(project=project, judge_routing=True, judge_audit_share=0.0, judge_min_strength=2)
    project.refresh_from_db()
    tasks = make_pairs(project)
    endpoint = endpoint_create(
        name="batch-ep", backend="openai", model="fake-judge", config={"base_url": url}, project=project
    )
    judge = judge_create(project=project, name="Batcher", endpoint=endpoint, actor=manager)
    monkeypatch.setattr(judge_services, "ROUTING_BATCH", 2)
    batches = []
    real = judge_services.routing_apply

    def routing_apply(**kw):
        batches.append(list(kw["task_ids"]))
        return real(**kw)

    monkeypatch.setattr(judge_services, "routing_apply", routing_apply)
    job = judge_job_run(job_id=judge_job_create(judge=judge, actor=manager).pk)
    assert job.state == JobState.DONE
    assert [len(b) for b in batches] == [2, 2, 1] and sorted(t for b in batches for t in b) == sorted(
        job.task_ids
    )
    assert RoutingDecision.objects.filter(job=job).count() == len(tasks)
    event = AuditEvent.objects.get(action="judge_job.finish", target_id=str(job.pk))
    assert event.details["routed"] == len(tasks)

    # a second job, cancelled once its first batch is routed
    more = make_pairs(project, {f"more{i}": (f"Answer q={i + 5}", "Answer q=1") for i in range(4)})
    batches.clear()

    def routing_then_cancel(**kw):
        out = real(**kw)
        JudgeJob.objects.filter(state=JobState.RUNNING).update(state=JobState.CANCELLED)
        batches.append(list(kw["task_ids"]))
        return out

    monkeypatch.setattr(judge_services, "routing_apply", routing_then_cancel)
    job2 = judge_job_run(job_id=judge_job_create(judge=judge, actor=manager, only_unjudged=True).pk)
    assert job2.state == JobState.CANCELLED and len(batches) == 1
    undecided = [t for t in more.values() if not RoutingDecision.objects.filter(task=t).exists()]
    assert len(undecided) == 2
