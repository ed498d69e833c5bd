"""Re-routing (``routing_reroute``): a manager routes again, with the current judges and settings,
the judged tasks no human has worked on yet. The old decision is withdrawn first (its judge labels
deleted, the task's target given back), tasks with human work keep theirs, and ``claims <=
target_labels`` holds throughout."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from annotate.errors import Conflict, InvalidInput
from annotate.judges import services as judge_services
from annotate.judges.services import judge_create, judge_set_active, routing_apply_now
from annotate.models import (
    Adjudication,
    Annotation,
    Assignment,
    AuditEvent,
    JudgeJob,
    JudgeSuggestion,
    RerouteJob,
    RoutingDecision,
    Task,
)
from annotate.services.leasing import annotation_submit, task_claim_next
from annotate.services.projects import membership_add, project_update_settings
from generation.models import ModelEndpoint
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


def add_suggestion(judge, task, status="ok", choice="", strength=None, **kw):
    """A finished job of ``judge`` over ``task`` with one suggestion (newer than any before)."""
    job = JudgeJob.objects.create(
        project=judge.project, judge=judge, rubric="r", task_ids=[task.pk], total_units=1, state="done"
    )
    return JudgeSuggestion.objects.create(
        job=job, judge=judge, task=task, status=status, choice=choice, strength=strength, **kw
    )


@pytest.fixture
def routed(make_project, make_user):
    """A project asking 3 labels per task, routing on (no audit share), one judge, and four tasks
    routed by it: ``confident`` (judge, a/3), ``unparsed`` (human), ``other`` and ``third``
    (judge, b/3). Returns (project, judge, manager, tasks)."""
    manager = make_user("reroute-boss")
    project = make_project(overlap=3)
    membership_add(project=project, user=manager, role="manager")
    project_update_settings(project=project, judge_routing=True, judge_audit_share=0.0, judge_min_strength=2)
    project.refresh_from_db()
    names = ["confident", "unparsed", "other", "third"]
    tasks = dict(zip(names, add_tasks(project, prompts=4), strict=True))
    endpoint = ModelEndpoint.objects.create(name="reroute-ep", backend="openai", model="m", project=project)
    judge = judge_create(project=project, name="Judge One", endpoint=endpoint, actor=manager)
    add_suggestion(judge, tasks["confident"], choice="a", strength=3)
    add_suggestion(judge, tasks["unparsed"], status="unparseable", error="no JSON")
    add_suggestion(judge, tasks["other"], choice="b", strength=3)
    add_suggestion(judge, tasks["third"], choice="b", strength=3)
    assert routing_apply_now(project=project, actor=manager) == 4
    return project, judge, manager, tasks


def routing_reroute(**kw):
    return judge_services.routing_reroute(**kw)


def fresh(task) -> Task:
    return Task.objects.get(pk=task.pk)


def decision(task) -> RoutingDecision | None:
    return RoutingDecision.objects.filter(task=task).first()


def assert_claims_consistent(project):
    """claims <= target_labels everywhere, and claims counts exactly the annotations plus the live
    leases (what leasing maintains)."""
    rows = Task.objects.filter(project=project).annotate(
        n_ann=Count("annotations", distinct=True),
        n_live=Count("assignments", filter=Q(assignments__state="live"), distinct=True),
    )
    for t in rows:
        assert 0 <= t.claims <= t.target_labels, (t.pk, t.claims, t.target_labels)
        assert t.claims == t.n_ann + t.n_live, (t.pk, t.claims, t.n_ann, t.n_live)


def test_routing_stores_the_target_the_task_had_before(routed):
    _project, _judge, _manager, tasks = routed
    d = decision(tasks["confident"])
    assert (d.route, d.reason) == ("judge", "confident")
    assert d.details["target_before"] == 3 and d.details["target_after"] == 1
    assert (fresh(tasks["confident"]).claims, fresh(tasks["confident"]).target_labels) == (1, 1)
    d = decision(tasks["unparsed"])
    assert (d.route, d.reason) == ("human", "unparsed")
    assert d.details["target_before"] == d.details["target_after"] == 3


def test_a_task_sent_to_humans_unparsed_goes_to_the_judge_once_it_answers(routed):
    project, judge, manager, tasks = routed
    task = tasks["unparsed"]
    add_suggestion(judge, task, choice="a", strength=3)  # the judge was fixed and ran again
    out = routing_reroute(project=project, actor=manager)
    d = decision(task)
    assert (d.route, d.reason) == ("judge", "confident")
    t = fresh(task)
    assert (t.claims, t.target_labels) == (1, 1)
    ann = Annotation.objects.get(task=task)
    assert ann.source == "judge" and ann.labeler_id == judge.user_id and ann.choice == "a"
    assert out.human_to_judge == 1 and out.judge_to_human == 0
    assert out.rerouted == 4 and out.left_alone == 0
    # the other tasks were decided again, the same way: one judge label each, no duplicate
    for name in ("confident", "other", "third"):
        assert Annotation.objects.filter(task=tasks[name]).count() == 1
        assert (fresh(tasks[name]).claims, fresh(tasks[name]).target_labels) == (1, 1)
    assert_claims_consistent(project)


def test_a_switched_off_judges_tasks_go_back_to_humans_with_their_target(routed, labeler_in):
    project, judge, manager, tasks = routed
    judge_set_active(judge=judge, active=False, actor=manager)
    out = routing_reroute(project=project, actor=manager)
    for name in ("confident", "other", "third"):
        t = fresh(tasks[name])
        assert decision(t) is None  # no active judge answered: an ordinary task, labeled by humans
        assert not Annotation.objects.filter(task=t).exists()
        assert (t.claims, t.target_labels) == (0, 3)
    assert out.judge_to_human == 3 and out.human_to_judge == 0 and out.undecided == 4
    # humans can claim them again
    human = labeler_in(project)
    assert task_claim_next(project=project, labeler=human) is not None
    assert_claims_consistent(project)


def test_an_older_decision_without_a_stored_target_falls_back_to_the_projects_overlap(routed):
    project, judge, manager, tasks = routed
    task = tasks["confident"]
    RoutingDecision.objects.filter(task=task).update(details={"judges": {}})  # written before this change
    judge_set_active(judge=judge, active=False, actor=manager)
    routing_reroute(project=project, actor=manager)
    t = fresh(task)
    assert (t.claims, t.target_labels) == (0, project.overlap)


def test_later_changes_to_the_target_are_kept(routed):
    project, judge, manager, tasks = routed
    task = tasks["unparsed"]
    Task.objects.filter(pk=task.pk).update(target_labels=F("target_labels") + 1)  # sent back for one more
    add_suggestion(judge, task, choice="a", strength=3)
    judge_set_active(judge=judge, active=False, actor=manager)
    routing_reroute(project=project, actor=manager)
    assert fresh(task).target_labels == 4


def test_tasks_with_human_work_keep_their_decision(routed, labeler_in):
    project, judge, manager, tasks = routed
    one, two = labeler_in(project), labeler_in(project)
    # humans work on the human-routed task: one submits, another holds a lease on it
    lease = task_claim_next(project=project, labeler=one)
    assert lease.task_id == tasks["unparsed"].pk
    annotation_submit(assignment_id=lease.pk, labeler=one, choice="left")
    held = task_claim_next(project=project, labeler=two)
    assert held.task_id == tasks["unparsed"].pk
    # an adjudicated judge-routed task, and one whose judge label a manager reviewed
    Adjudication.objects.create(task=tasks["other"], choice="b", adjudicator=manager)
    from annotate.models import AnnotationReview

    AnnotationReview.objects.create(
        annotation=Annotation.objects.get(task=tasks["third"]), verdict="accepted", reviewer=manager
    )
    before = {d.task_id: (d.pk, d.route, d.reason) for d in RoutingDecision.objects.filter(project=project)}
    claims_before = {t.pk: (t.claims, t.target_labels) for t in Task.objects.filter(project=project)}
    add_suggestion(judge, tasks["unparsed"], choice="a", strength=3)  # would now be confident
    judge_set_active(judge=judge, active=False, actor=manager)  # and the others would go to humans
    out = routing_reroute(project=project, actor=manager)
    for name in ("unparsed", "other", "third"):
        t = tasks[name]
        d = decision(t)
        assert (d.pk, d.route, d.reason) == before[t.pk], name
        assert (fresh(t).claims, fresh(t).target_labels) == claims_before[t.pk], name
    assert Annotation.objects.filter(task=tasks["other"], source="judge").exists()
    assert not Annotation.objects.filter(task=tasks["unparsed"], source="judge").exists()
    assert out.rerouted == 1 and out.left_alone == 3
    assert out.left_alone_why == {"human_work": 1, "adjudicated": 1, "reviewed": 1}
    assert decision(tasks["confident"]) is None
    assert_claims_consistent(project)
    assert Assignment.objects.filter(task=tasks["unparsed"], state="live").count() == 1


def test_the_audit_event_counts_what_changed(routed):
    project, judge, manager, tasks = routed
    add_suggestion(judge, tasks["unparsed"], choice="a", strength=3)
    add_suggestion(judge, tasks["other"], choice="b", strength=1)  # now weak: humans
    routing_reroute(project=project, actor=manager)
    event = AuditEvent.objects.filter(project=project, action="judge.reroute").get()
    assert event.actor == manager
    assert event.details == {
        "rerouted": 4,
        "judge_to_human": 1,
        "human_to_judge": 1,
        "unchanged": 2,
        "to_judges": 3,
        "to_humans": 1,
        "undecided": 0,
        "left_alone": 0,
        "left_alone_why": {},
    }
    assert decision(tasks["other"]).reason == "low_strength"
    t = fresh(tasks["other"])
    assert (t.claims, t.target_labels) == (0, 3)


def test_refused_when_routing_is_off_or_nothing_can_change(routed, labeler_in, make_project):
    project, _judge, manager, _tasks = routed
    project_update_settings(project=project, judge_routing=False)
    project.refresh_from_db()
    with pytest.raises(InvalidInput, match="routing"):
        routing_reroute(project=project, actor=manager)
    empty = make_project()
    project_update_settings(project=empty, judge_routing=True)
    empty.refresh_from_db()
    with pytest.raises(InvalidInput, match="Nothing to re-route"):
        routing_reroute(project=empty, actor=manager)
    assert not AuditEvent.objects.filter(action="judge.reroute").exists()


def test_claims_never_exceed_the_target_when_a_labeler_claims_in_between(routed, labeler_in, monkeypatch):
    """A labeler claims a human-routed task after the scope was read but before the batch is
    locked: the batch reads the scope again under its row locks and leaves that task alone."""
    project, judge, manager, tasks = routed
    add_suggestion(judge, tasks["unparsed"], choice="a", strength=3)
    human = labeler_in(project)
    real = judge_services._reroute_batch
    claimed = []

    def claim_first(**kw):
        if not claimed:
            claimed.append(task_claim_next(project=project, labeler=human))
        return real(**kw)

    monkeypatch.setattr(judge_services, "_reroute_batch", claim_first)
    out = routing_reroute(project=project, actor=manager)
    assert claimed[0].task_id == tasks["unparsed"].pk
    assert out.left_alone_why == {"human_work": 1}
    assert decision(tasks["unparsed"]).reason == "unparsed"
    assert_claims_consistent(project)


# --- the page ---------------------------------------------------------------------------------------


def test_managers_reroute_from_the_judges_page(
    routed, client, labeler_in, celery_eager, django_capture_on_commit_callbacks
):
    """The button starts a re-route that a worker runs (here Celery runs it eagerly once the
    request commits); the page then says what it changed."""
    project, judge, manager, tasks = routed
    add_suggestion(judge, tasks["unparsed"], choice="a", strength=3)
    client.force_login(manager)
    url = f"/projects/{project.slug}/judges/"
    page = client.get(url).content.decode()
    assert "Re-route undecided and unlabeled tasks" in page
    assert 'id="reroute-form"' in page and "4 tasks" in page
    assert 'id="reroute-status"' not in page  # no re-route yet
    # without the confirmation ticked: nothing happens
    resp = client.post(f"{url}reroute/", follow=True)
    assert "Tick the confirmation" in resp.content.decode()
    assert decision(tasks["unparsed"]).reason == "unparsed"
    assert not RerouteJob.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        resp = client.post(f"{url}reroute/", {"confirm": "on"})
    assert resp.status_code == 302 and resp.url.endswith(url)
    job = RerouteJob.objects.get()
    assert (job.state, job.total_units, job.done_units, job.created_by) == ("done", 4, 4, manager)
    body = client.get(url).content.decode()
    assert "Re-routing 4 tasks in the background" in body  # the flash of the POST
    assert 'data-state="done"' in body
    assert "Re-routed 4 tasks: 1 from humans to the judges, 0 from the judges to humans" in body
    assert "(asked by reroute-boss)" in body
    assert decision(tasks["unparsed"]).reason == "confident"


def test_a_running_reroute_shows_its_progress_and_refuses_a_second(routed, client):
    """Queued (no worker yet): the page says so and offers no button; a second start (a stale page,
    the API of another tab) is refused with a message, by the database's one-active constraint if
    two requests race."""
    project, _judge, manager, _tasks = routed
    job = judge_services.reroute_start(project=project, actor=manager)  # no worker runs it
    assert (job.state, job.total_units, job.done_units) == ("queued", 4, 0)
    client.force_login(manager)
    url = f"/projects/{project.slug}/judges/"
    page = client.get(url).content.decode()
    assert 'data-state="queued"' in page and "A re-route is waiting for a worker" in page
    assert 'id="reroute-form"' not in page
    resp = client.post(f"{url}reroute/", {"confirm": "on"}, follow=True)
    assert "A re-route of this project is already running" in resp.content.decode()
    assert RerouteJob.objects.count() == 1
    RerouteJob.objects.filter(pk=job.pk).update(state="running", done_units=2)
    page = client.get(url).content.decode()
    assert "Re-routing in the background: 2 of 4 tasks done" in page
    # the database keeps it to one, whatever the caller
    with pytest.raises(IntegrityError), transaction.atomic():
        RerouteJob.objects.create(project=project, created_by=manager)


def test_the_worker_records_progress_and_the_outcome(routed, monkeypatch):
    project, judge, manager, tasks = routed
    add_suggestion(judge, tasks["unparsed"], choice="a", strength=3)
    monkeypatch.setattr(judge_services, "REROUTE_BATCH", 3)
    seen = []
    real = judge_services._reroute_batch

    def batch(**kw):
        seen.append(RerouteJob.objects.values_list("state", "done_units").get())
        return real(**kw)

    monkeypatch.setattr(judge_services, "_reroute_batch", batch)
    job = judge_services.reroute_start(project=project, actor=manager)
    job = judge_services.reroute_job_run(job_id=job.pk)
    assert seen == [("running", 0), ("running", 3)]  # progress after the first batch of 3
    assert (job.state, job.done_units, job.total_units) == ("done", 4, 4)
    assert job.outcome["rerouted"] == 4 and job.outcome["human_to_judge"] == 1
    assert job.started_at is not None and job.finished_at is not None
    event = AuditEvent.objects.get(action="judge.reroute")
    assert event.actor == manager and event.details == job.outcome
    # a redelivered message of an ended re-route does nothing
    again = judge_services.reroute_job_run(job_id=job.pk)
    assert again.state == "done" and AuditEvent.objects.filter(action="judge.reroute").count() == 1


def test_a_reroute_that_fails_says_why_and_keeps_what_committed(routed, monkeypatch, client):
    project, _judge, manager, _tasks = routed
    monkeypatch.setattr(judge_services, "REROUTE_BATCH", 2)
    real, calls = judge_services._reroute_batch, []

    def batch(**kw):
        calls.append(kw["task_ids"])
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(**kw)

    monkeypatch.setattr(judge_services, "_reroute_batch", batch)
    job = judge_services.reroute_job_run(
        job_id=judge_services.reroute_start(project=project, actor=manager).pk
    )
    assert (job.state, job.done_units, job.total_units) == ("failed", 2, 4)
    assert job.error == "RuntimeError: disk full"
    assert AuditEvent.objects.get(action="judge.reroute").details["interrupted"] is True
    client.force_login(manager)
    page = client.get(f"/projects/{project.slug}/judges/").content.decode()
    assert "The last re-route failed" in page and "after 2 of 4 tasks: RuntimeError: disk full" in page
    assert 'id="reroute-form"' in page  # it can be pressed again


def test_a_reroute_refused_by_the_time_it_runs_fails_with_the_reason(routed):
    """Routing switched off between the button and the worker: the job ends failed, with the
    refusal's words, and changes nothing."""
    project, _judge, manager, tasks = routed
    job = judge_services.reroute_start(project=project, actor=manager)
    project_update_settings(project=project, judge_routing=False)
    job = judge_services.reroute_job_run(job_id=job.pk)
    assert job.state == "failed" and job.error == "Turn judge routing on in the project's settings first."
    assert decision(tasks["unparsed"]).reason == "unparsed"
    assert not AuditEvent.objects.filter(action="judge.reroute").exists()


def test_researchers_and_labelers_cannot_reroute(routed, client, labeler_in):
    project, _judge, _manager, _tasks = routed
    researcher = labeler_in(project, role="researcher")
    client.force_login(researcher)
    page = client.get(f"/projects/{project.slug}/judges/").content.decode()
    assert "Re-route undecided and unlabeled tasks" not in page
    assert client.post(f"/projects/{project.slug}/judges/reroute/", {"confirm": "on"}).status_code == 403
    client.force_login(labeler_in(project))
    assert client.post(f"/projects/{project.slug}/judges/reroute/", {"confirm": "on"}).status_code in (
        403,
        404,
    )
    assert not AuditEvent.objects.filter(action="judge.reroute").exists()


def test_the_page_refuses_with_a_clear_message(routed, client):
    project, _judge, manager, _tasks = routed
    client.force_login(manager)
    project_update_settings(project=project, judge_routing=False)
    resp = client.post(f"/projects/{project.slug}/judges/reroute/", {"confirm": "on"}, follow=True)
    assert "Turn judge routing on" in resp.content.decode()
    assert not AuditEvent.objects.filter(action="judge.reroute").exists()


@pytest.mark.postgres(reason="needs PostgreSQL for real row locking (set DATABASE_URL)")
@pytest.mark.django_db(transaction=True)
def test_labelers_claiming_while_a_manager_reroutes_on_postgresql(
    make_project, make_user, labeler_in, monkeypatch
):
    """Real concurrent sessions: labelers claim the human-routed tasks while the manager re-routes
    them to the judge, in small batches. Whatever the interleaving, a task someone holds keeps its
    decision and gets no judge label, every other one goes to the judge, and claims add up."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    manager = make_user()
    project = make_project(overlap=2)
    membership_add(project=project, user=manager, role="manager")
    project_update_settings(project=project, judge_routing=True, judge_audit_share=0.0)
    project.refresh_from_db()
    tasks = add_tasks(project, prompts=30)
    endpoint = ModelEndpoint.objects.create(name="race-ep", backend="openai", model="m", project=project)
    judge = judge_create(project=project, name="racer", endpoint=endpoint)
    humans = tasks[::2]
    for t in humans:
        add_suggestion(judge, t, status="unparseable", error="no JSON")
    for t in tasks[1::2]:
        add_suggestion(judge, t, choice="a", strength=3)
    routing_apply_now(project=project)
    for t in humans:
        add_suggestion(judge, t, choice="b", strength=3)  # the fixed judge answers them now
    labelers = [labeler_in(project) for _ in range(6)]
    monkeypatch.setattr(judge_services, "REROUTE_BATCH", 3)
    real_batch = judge_services._reroute_batch

    def slow_batch(**kw):  # leave the labelers time to claim between the batches
        time.sleep(0.02)
        return real_batch(**kw)

    monkeypatch.setattr(judge_services, "_reroute_batch", slow_batch)
    barrier = threading.Barrier(len(labelers) + 1)

    def claim(labeler, delay):
        try:
            barrier.wait()
            time.sleep(delay)  # staggered: some claim before the scope is read, some during
            held = []
            for _ in range(2):
                lease = task_claim_next(project=project, labeler=labeler, exclude_assignment_ids=held)
                if lease is not None:
                    held.append(lease.pk)
            return held
        finally:
            connections.close_all()

    def reroute():
        try:
            barrier.wait()
            return routing_reroute(project=project, actor=manager)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=len(labelers) + 1) as pool:
        claims = [pool.submit(claim, lab, 0.015 * i) for i, lab in enumerate(labelers)]
        out = pool.submit(reroute).result()
        [c.result() for c in claims]
    assert_claims_consistent(project)
    held = set(
        Assignment.objects.filter(task__project=project, state="live").values_list("task_id", flat=True)
    )
    for t in humans:
        d = decision(t)
        if t.pk in held:
            assert d.reason == "unparsed" and not Annotation.objects.filter(task=t).exists(), t.pk
        else:
            assert d.reason == "confident" and Annotation.objects.filter(task=t, source="judge").count() == 1
            assert (fresh(t).claims, fresh(t).target_labels) == (1, 1)
    assert out.human_to_judge == len(humans) - len(held)
    assert out.left_alone == len(held)


def test_raising_the_overlap_leaves_judge_routed_tasks_to_the_judges(routed, make_user):
    """An overlap change moved every task's target, judge-routed ones included: raising 3 -> 5 gave
    each task the judges had taken two human slots (routing's saving gone, silently). A judge-routed
    task now keeps its target, and the target it would go back to if re-routed moves instead; the
    tasks for humans move as before."""
    project, judge, manager, tasks = routed
    before = {name: (fresh(t).claims, fresh(t).target_labels) for name, t in tasks.items()}
    assert before["confident"] == (1, 1) and before["unparsed"] == (0, 3)
    project_update_settings(project=project, overlap=5)
    assert (fresh(tasks["confident"]).claims, fresh(tasks["confident"]).target_labels) == (1, 1)
    assert fresh(tasks["third"]).target_labels == 1
    assert fresh(tasks["unparsed"]).target_labels == 5
    labeler = make_user("overlap-labeler")
    membership_add(project=project, user=labeler, role="labeler")
    offered = set()
    while (lease := task_claim_next(project=project, labeler=labeler)) is not None:
        offered.add(lease.task_id)
        annotation_submit(assignment_id=lease.pk, labeler=labeler, choice="left")
    assert offered == {tasks["unparsed"].pk}, "humans are offered only the task routed to them"
    assert_claims_consistent(project)
    # switched off, the judge's tasks go back to humans with the overlap of now
    judge_set_active(judge=judge, active=False, actor=manager)
    routing_reroute(project=project, actor=manager)
    assert fresh(tasks["confident"]).target_labels == 5 and fresh(tasks["confident"]).claims == 0
    project_update_settings(project=project, overlap=2)
    assert fresh(tasks["confident"]).target_labels == 2
    assert_claims_consistent(project)


def test_the_page_s_confirmation_counts_what_the_button_would_do(routed, labeler_in):
    """The confirmation (``reroute_preview``, counted in the database) and the re-route's own scope
    (``reroute_scope``) read one definition: same tasks, same reasons, the first reason winning."""
    from datetime import timedelta

    from django.utils import timezone

    from annotate.judges.selectors import reroute_preview, reroute_scope
    from annotate.models import AnnotationReview

    project, judge, manager, tasks = routed
    leased, undecided, unseen = add_tasks(project, prompts=3, prefix="more")
    add_suggestion(judge, leased, choice="a", strength=3)
    add_suggestion(judge, undecided, choice="a", strength=3)  # judged, routing not applied yet
    switched_off = judge_create(project=project, name="Judge Off", endpoint=judge.endpoint, actor=manager)
    add_suggestion(switched_off, unseen, choice="a", strength=3)
    judge_set_active(judge=switched_off, active=False, actor=manager)  # its answer alone: out of scope
    human = labeler_in(project)
    now = timezone.now()
    Assignment.objects.create(
        task=leased, labeler=human, state="live", leased_at=now, expires_at=now + timedelta(hours=1),
        shown_order=[],
    )  # fmt: skip
    Annotation.objects.create(task=tasks["unparsed"], labeler=human, choice="a")  # human work ...
    Adjudication.objects.create(
        task=tasks["unparsed"], choice="b", adjudicator=manager
    )  # ... and a final label
    AnnotationReview.objects.create(
        annotation=Annotation.objects.get(task=tasks["third"]), verdict="accepted", reviewer=manager
    )
    preview = reroute_preview(project=project)
    assert preview == {
        "in_scope": 3,  # confident and other (to the judges), undecided
        "to_judges": 2,
        "to_humans": 0,
        "undecided": 1,
        "left_alone": 3,
        "left_alone_why": {"adjudicated": 1, "reviewed": 1, "human_work": 1},
    }
    scope = reroute_scope(project=project)
    assert sorted(scope.task_ids) == sorted([tasks["confident"].pk, tasks["other"].pk, undecided.pk])
    assert scope.left_alone == {
        tasks["unparsed"].pk: "adjudicated",
        tasks["third"].pk: "reviewed",
        leased.pk: "human_work",
    }
    assert scope.left_alone_why() == preview["left_alone_why"]


def test_a_stalled_reroute_can_be_replaced(routed, client):
    """A re-route whose worker died (no progress for ten minutes) would hide the button for ever:
    the page says so, offers the button again, and the new re-route fails the old one; the old
    worker, if it was only held up, stops at its next batch."""
    project, judge, manager, tasks = routed
    add_suggestion(judge, tasks["unparsed"], choice="a", strength=3)
    old = judge_services.reroute_start(project=project, actor=manager)
    RerouteJob.objects.filter(pk=old.pk).update(state="running", done_units=2, progress_at=timezone.now())
    client.force_login(manager)
    url = f"/projects/{project.slug}/judges/"
    assert 'id="reroute-form"' not in client.get(url).content.decode()  # alive: no second one
    with pytest.raises(Conflict):
        judge_services.reroute_start(project=project, actor=manager)
    RerouteJob.objects.filter(pk=old.pk).update(progress_at=timezone.now() - timedelta(minutes=11))
    page = client.get(url).content.decode()
    assert "has made no progress since 11" in page and 'id="reroute-form"' in page
    new = judge_services.reroute_start(project=project, actor=manager)
    old.refresh_from_db()
    assert old.state == "failed" and "No progress for 10 minutes" in old.error
    assert judge_services.reroute_job_run(job_id=old.pk).state == "failed"  # its late message: nothing
    assert decision(tasks["unparsed"]).reason == "unparsed"
    assert judge_services.reroute_job_run(job_id=new.pk).state == "done"
    assert decision(tasks["unparsed"]).reason == "confident"


def test_a_held_up_worker_stops_once_its_reroute_was_replaced(routed, monkeypatch):
    project, _judge, manager, _tasks = routed
    monkeypatch.setattr(judge_services, "REROUTE_BATCH", 2)
    job = judge_services.reroute_start(project=project, actor=manager)
    real = judge_services._reroute_batch

    def batch(**kw):
        real(**kw)  # then the job is failed as stalled by a newer request
        RerouteJob.objects.filter(pk=job.pk).update(state="failed", error="replaced")

    monkeypatch.setattr(judge_services, "_reroute_batch", batch)
    job = judge_services.reroute_job_run(job_id=job.pk)
    assert (job.state, job.error, job.done_units) == ("failed", "replaced", 0)
    assert AuditEvent.objects.get(action="judge.reroute").details["rerouted"] == 2  # one batch only
