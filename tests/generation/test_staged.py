"""Staged candidates: a job's outputs are checked when their batch commits and stay out of the
labeling queue until a release (all, passing, none), which happens once, is audited and recorded;
the job page and the API show the checks and release; managers and researchers (capability
"release") may release, labelers may not."""

import pytest
from django.test import Client

from annotate.errors import Conflict, InvalidInput
from annotate.models import AuditEvent, Candidate, Task, TaskCandidate
from annotate.services.projects import membership_add
from generation import selectors, services
from generation.models import CandidateCheck, GenerationBatch, GenerationJob, JobState
from tests.conftest import bearer
from tests.generation.staged_data import staged_job


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.setattr("core.outbox.send_task", lambda name, args: None)


def _client(user):
    client = Client()
    client.force_login(user)
    return client


def _failed(job):
    """{(endpoint, prompt external id, sample index): [failed checks]}"""
    return {
        (c.endpoint.name, c.prompt.external_id, c.candidate.sample_index): c.failed
        for c in CandidateCheck.objects.filter(job=job).select_related("endpoint", "prompt", "candidate")
    }


# --- the checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "failed"),
    [
        ({"text": "A fine answer.\n\tWith a tab."}, set()),
        ({"text": " \n\t "}, {"empty"}),
        ({"text": "broken \ufffd decode"}, {"bad_chars"}),
        ({"text": "bell \x07"}, {"bad_chars"}),
        ({"text": "carriage\rreturn"}, {"bad_chars"}),
        ({"text": "C1 \x85 next line"}, {"bad_chars"}),
        ({"text": "é ü 漢字 emoji 🙂"}, set()),
        ({"text": "x", "completion_tokens": 16, "max_new_tokens": 16}, {"over_length"}),
        ({"text": "x", "completion_tokens": 15, "max_new_tokens": 16}, set()),
        ({"text": "x", "finish_reason": "length"}, {"stop_reason"}),
        ({"text": "x", "native_finish_reason": "content_filter"}, {"stop_reason"}),
        ({"text": "x", "native_finish_reason": "abort"}, {"stop_reason"}),
        ({"text": "x", "native_finish_reason": "eos"}, set()),
    ],
)
def test_candidate_checks(kwargs, failed):
    kwargs = {"finish_reason": "stop", **kwargs}
    result = services.candidate_checks(**kwargs)
    assert {name for name, bad in result.items() if bad} == failed


def test_job_output_lands_staged_with_its_checks(research_project, monkeypatch):
    job = staged_job(research_project, monkeypatch)
    assert job.state == JobState.DONE and job.done_units == 8
    assert Candidate.objects.filter(generation_job=job).count() == 16
    assert not Task.objects.filter(generation_job=job).exists()  # nothing reaches labelers yet
    assert job.released == "" and selectors.job_status(job=job)["release"]["state"] == "staged"
    failed = _failed(job)
    assert failed[("e1", "q0", 0)] == [] and failed[("e1", "q0", 1)] == []
    assert failed[("e2", "q0", 0)] == ["duplicate"]  # the first copy (e1's) passes
    assert failed[("e1", "q1", 0)] == ["empty"]
    assert failed[("e2", "q1", 0)] == ["bad_chars"]
    # identical pair across both endpoints: e2's batch, committed later, updated e1's checks too
    assert failed[("e1", "q2", 0)] == ["identical"]
    assert failed[("e1", "q2", 1)] == ["duplicate", "identical"]
    assert failed[("e2", "q2", 0)] == ["duplicate", "identical"]
    assert failed[("e1", "q3", 0)] == ["bad_chars"]
    assert failed[("e1", "q3", 1)] == ["over_length", "stop_reason"]
    assert failed[("e2", "q3", 0)] == ["stop_reason"]
    assert (
        CandidateCheck.objects.get(
            candidate__endpoint__name="e2", candidate__prompt__external_id="q3", candidate__sample_index=0
        ).finish_reason
        == "content_filter"
    )

    summary = selectors.job_staged_summary(job=job)
    by_endpoint = {row["endpoint"]: row for row in summary["endpoints"]}
    assert by_endpoint["e1"]["candidates"] == 8 and by_endpoint["e1"]["passing"] == 3
    assert by_endpoint["e1"]["failed"] == {
        "empty": 1,
        "duplicate": 1,
        "identical": 2,
        "bad_chars": 1,
        "over_length": 1,
        "stop_reason": 1,
    }
    assert by_endpoint["e2"]["passing"] == 3
    assert by_endpoint["e2"]["failed"] == {
        "empty": 0,
        "duplicate": 3,
        "identical": 2,
        "bad_chars": 1,
        "over_length": 0,
        "stop_reason": 1,
    }
    assert summary["would_release"] == {
        "all": {"candidates": 16, "tasks": 24},
        "passing": {"candidates": 6, "tasks": 4},
    }


def test_checks_are_written_once_per_batch(research_project, monkeypatch):
    job = staged_job(research_project, monkeypatch, run=False)
    first = GenerationBatch.objects.filter(job=job).order_by("index").first()
    services.batch_run(batch_id=first.pk)
    assert services.batch_run(batch_id=first.pk).status == "skipped"
    assert CandidateCheck.objects.filter(job=job).count() == 2


# --- release ----------------------------------------------------------------------------------


def test_release_passing_leaves_failing_candidates_out(research_project, researcher, monkeypatch):
    job = staged_job(research_project, monkeypatch)
    job = services.job_release(job=job, which="passing", actor=researcher)
    assert (job.released, job.released_tasks, job.excluded_candidates) == ("passing", 4, 10)
    assert job.released_by == researcher and job.released_at is not None
    tasks = Task.objects.filter(generation_job=job)
    assert tasks.count() == 4
    used = TaskCandidate.objects.filter(task__in=tasks).values_list("candidate_id", flat=True)
    assert not CandidateCheck.objects.filter(candidate_id__in=used, passed=False).exists()
    assert set(tasks.values_list("prompt__external_id", flat=True)) == {"q0", "q1"}  # q3 kept 1 only
    event = AuditEvent.objects.get(action="generation.job_release")
    assert event.actor == researcher and event.target_id == str(job.pk)
    assert event.details["which"] == "passing" and event.details["tasks"] == 4
    assert event.details["excluded_candidates"] == 10 and event.details["prompts_without_task"] == 2

    with pytest.raises(Conflict, match="already released"):
        services.job_release(job=job, which="all", actor=researcher)
    assert Task.objects.filter(generation_job=job).count() == 4
    assert AuditEvent.objects.filter(action="generation.job_release").count() == 1


def test_release_all_and_none(research_project, researcher, make_project, monkeypatch):
    job = staged_job(research_project, monkeypatch)
    job = services.job_release(job=job, which="all", actor=researcher)
    assert (job.released_tasks, job.excluded_candidates) == (24, 0)
    assert Task.objects.filter(generation_job=job).count() == 24

    other = make_project()
    job = staged_job(other, monkeypatch, suffix="-other")
    job = services.job_release(job=job, which="none", actor=researcher)
    assert (job.released, job.released_tasks, job.excluded_candidates) == ("none", 0, 16)
    assert not Task.objects.filter(generation_job=job).exists()
    with pytest.raises(Conflict):
        services.job_release(job=job, which="passing", actor=researcher)


def test_release_refusals(research_project, researcher, monkeypatch):
    job = staged_job(research_project, monkeypatch, run=False)
    with pytest.raises(Conflict, match="queued"):
        services.job_release(job=job, which="all", actor=researcher)
    with pytest.raises(InvalidInput) as info:
        services.job_release(job=job, which="some", actor=researcher)
    assert info.value.field == "which"
    assert not Task.objects.filter(generation_job=job).exists()


def test_auto_release_of_the_passing_ones(research_project, monkeypatch):
    job = staged_job(research_project, monkeypatch, auto_release="passing")
    assert (job.state, job.released, job.released_tasks, job.excluded_candidates) == (
        "done",
        "passing",
        4,
        10,
    )
    assert job.released_by is None
    assert Task.objects.filter(generation_job=job).count() == 4
    event = AuditEvent.objects.get(action="generation.job_release")
    assert event.actor is None and event.details["auto"] is True
    with pytest.raises(InvalidInput):
        services.job_create(project=research_project, endpoints=list(job.endpoints.all()), auto_release="x")


# --- pages ------------------------------------------------------------------------------------


def test_job_page_shows_checks_and_samples_and_releases(research_project, researcher, monkeypatch):
    job = staged_job(research_project, monkeypatch)
    client = _client(researcher)
    url = f"/generation/{research_project.slug}/jobs/{job.pk}/"
    html = client.get(url).content.decode()
    assert "Staged candidates" in html and 'data-release="staged"' in html
    assert "identical pair" in html and "control chars" in html and "stop reason" in html
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; fine" in html and "<b>bold</b>" not in html  # escaped
    assert "Release passing (6 responses, 4 tasks)" in html
    assert "Release all (16 responses, 24 tasks)" in html
    home = client.get(f"/generation/{research_project.slug}/").content.decode()
    assert '<span class="badge badge-muted">staged</span>' in home

    response = client.post(f"{url}release/", {"which": "passing"}, follow=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert "4 tasks created, 10 candidates left out" in html
    assert 'data-release="released"' in html and 'name="which"' not in html
    assert Task.objects.filter(generation_job=job).count() == 4

    again = client.post(f"{url}release/", {"which": "all"}, follow=True)
    assert "already released" in again.content.decode()
    assert Task.objects.filter(generation_job=job).count() == 4


def test_labelers_cannot_release_and_outsiders_do_not_see_the_job(
    research_project, make_user, make_project, monkeypatch
):
    job = staged_job(research_project, monkeypatch)
    labeler = make_user()
    membership_add(project=research_project, user=labeler, role="labeler")
    base = f"/generation/{research_project.slug}/jobs/{job.pk}/"
    client = _assert_job_refused(labeler, job, base, 403)
    assert client.get(f"{base}status.json").status_code == 403
    # a manager of another project only: the job does not exist for them
    outsider = make_user()
    membership_add(project=make_project(), user=outsider, role="manager")
    _assert_job_refused(outsider, job, base, 404)
    assert not Task.objects.filter(generation_job=job).exists()


def _assert_job_refused(user, job, base: str, status: int):
    """The job's page, its release, and the same over the API: each answered ``status`` for
    ``user``. Returns the user's page client."""
    client = _client(user)
    assert client.get(base).status_code == status
    assert client.post(f"{base}release/", {"which": "all"}).status_code == status
    api = bearer(user)
    assert api.get(f"/api/v1/generation/jobs/{job.pk}/").status_code == status
    release = api.post(f"/api/v1/generation/jobs/{job.pk}/release", {"which": "all"}, format="json")
    assert release.status_code == status
    return client


# --- managers review and release (capability "release") ---------------------------------------


@pytest.fixture
def manager(research_project, make_user):
    user = make_user("mona")
    membership_add(project=research_project, user=user, role="manager")
    return user


def test_a_manager_releases_through_the_service_audited_as_themselves(research_project, manager, monkeypatch):
    job = staged_job(research_project, monkeypatch)
    assert [j.pk for j in selectors.jobs_awaiting_release(project=research_project)] == [job.pk]
    job = services.job_release(job=job, which="passing", actor=manager)
    assert job.released_by == manager and job.released_tasks == 4
    assert AuditEvent.objects.get(action="generation.job_release").actor == manager
    assert selectors.jobs_awaiting_release(project=research_project) == []


def test_jobs_awaiting_release_leave_out_running_released_and_empty_jobs(
    research_project, researcher, make_project, monkeypatch
):
    job = staged_job(research_project, monkeypatch)
    GenerationJob.objects.create(project=research_project, k=2, state=JobState.DONE)  # no candidate
    staged_job(make_project(), monkeypatch, suffix="-elsewhere")  # another project's
    assert [j.pk for j in selectors.jobs_awaiting_release(project=research_project)] == [job.pk]
    for state, listed in ((JobState.RUNNING, False), (JobState.FAILED, False), (JobState.CANCELLED, True)):
        GenerationJob.objects.filter(pk=job.pk).update(state=state)
        assert bool(selectors.jobs_awaiting_release(project=research_project)) is listed, state
    services.job_release(job=job, which="none", actor=researcher)
    assert selectors.jobs_awaiting_release(project=research_project) == []


def test_a_manager_reviews_and_releases_on_the_job_page(research_project, manager, monkeypatch):
    job = staged_job(research_project, monkeypatch)
    client = _client(manager)
    slug = research_project.slug
    progress = client.get(f"/projects/{slug}/manage/").content.decode()
    assert 'id="staged-jobs"' in progress
    assert f'href="/generation/{slug}/jobs/{job.pk}/"' in progress and "16 responses waiting" in progress

    url = f"/generation/{slug}/jobs/{job.pk}/"
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Staged candidates" in html and "identical pair" in html
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; fine" in html and "<b>bold</b>" not in html
    assert "Release passing (6 responses, 4 tasks)" in html
    assert "<h2>Settings</h2>" in html  # read-only settings
    assert "All generation jobs" not in html and "Jobs waiting for release" in html
    assert client.get(f"{url}status.json").status_code == 200

    released = client.post(f"{url}release/", {"which": "passing"}, follow=True)
    assert released.status_code == 200
    assert "4 tasks created, 10 candidates left out" in released.content.decode()
    job.refresh_from_db()
    assert job.released == "passing" and job.released_by == manager
    assert Task.objects.filter(generation_job=job).count() == 4
    progress = client.get(f"/projects/{slug}/manage/").content.decode()
    assert "No generated responses wait for a release." in progress


def test_a_manager_cannot_start_cancel_or_list_jobs(research_project, manager, researcher, monkeypatch):
    job = staged_job(research_project, monkeypatch, run=False)  # queued: the researcher may cancel
    slug = research_project.slug
    url = f"/generation/{slug}/jobs/{job.pk}/"
    assert "Cancel job" in _client(researcher).get(url).content.decode()
    client = _client(manager)
    html = client.get(url).content.decode()
    assert "Cancel job" not in html and f"{url}cancel/" not in html
    assert client.get(f"/generation/{slug}/").status_code == 403
    assert client.post(f"/generation/{slug}/jobs/new/", {}).status_code == 403
    assert client.post(f"{url}cancel/").status_code == 403
    api = bearer(manager, projects=[research_project])
    assert api.post(f"/api/v1/generation/jobs/{job.pk}/cancel/").status_code == 403
    assert api.get(f"/api/v1/projects/{slug}/generation/jobs/").status_code == 403
    assert (
        api.post(
            f"/api/v1/projects/{slug}/generation/jobs/", {"endpoints": ["e1"]}, format="json"
        ).status_code
        == 403
    )
    job.refresh_from_db()
    assert job.state == JobState.QUEUED


def test_a_manager_releases_through_the_api_with_a_scoped_token(
    research_project, manager, make_project, monkeypatch
):
    job = staged_job(research_project, monkeypatch)
    elsewhere = make_project()
    membership_add(project=elsewhere, user=manager, role="manager")
    narrowed = bearer(manager, projects=[elsewhere])
    assert narrowed.get(f"/api/v1/generation/jobs/{job.pk}/").status_code == 404
    refused = narrowed.post(f"/api/v1/generation/jobs/{job.pk}/release", {"which": "all"}, format="json")
    assert refused.status_code == 404
    assert not Task.objects.filter(generation_job=job).exists()

    client = bearer(manager, projects=[research_project])
    detail = client.get(f"/api/v1/generation/jobs/{job.pk}/")
    assert detail.status_code == 200 and detail.json()["staged"]["would_release"]["all"]["tasks"] == 24
    released = client.post(f"/api/v1/generation/jobs/{job.pk}/release", {"which": "all"}, format="json")
    assert released.status_code == 200, released.content
    assert released.json()["release"]["released_by"] == "mona"
    assert Task.objects.filter(generation_job=job).count() == 24


# --- API --------------------------------------------------------------------------------------


def test_api_staged_summary_and_release(research_project, researcher, make_project, monkeypatch):
    job = staged_job(research_project, monkeypatch)
    client = bearer(researcher, projects=[research_project])
    detail = client.get(f"/api/v1/generation/jobs/{job.pk}/").json()
    assert detail["release"]["state"] == "staged" and detail["release"]["which"] is None
    assert [row["endpoint"] for row in detail["staged"]["endpoints"]] == ["e1", "e2"]
    assert detail["staged"]["endpoints"][0]["failed"]["identical"] == 2
    assert detail["staged"]["would_release"]["passing"] == {"candidates": 6, "tasks": 4}

    bad = client.post(f"/api/v1/generation/jobs/{job.pk}/release", {"which": "some"}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "which"
    missing = client.post(f"/api/v1/generation/jobs/{job.pk}/release", {}, format="json")
    assert missing.status_code == 400

    # a token of the same researcher, narrowed to another project, does not reach the job
    elsewhere = make_project()
    membership_add(project=elsewhere, user=researcher, role="researcher")
    narrowed = bearer(researcher, projects=[elsewhere])
    refused = narrowed.post(f"/api/v1/generation/jobs/{job.pk}/release", {"which": "all"}, format="json")
    assert refused.status_code == 404
    assert not Task.objects.filter(generation_job=job).exists()

    released = client.post(f"/api/v1/generation/jobs/{job.pk}/release", {"which": "passing"}, format="json")
    assert released.status_code == 200, released.content
    data = released.json()
    assert data["release"]["state"] == "released" and data["release"]["which"] == "passing"
    assert data["release"]["released_tasks"] == 4 and data["release"]["excluded_candidates"] == 10
    assert data["release"]["released_by"] == researcher.username and data["tasks"] == 4

    again = client.post(f"/api/v1/generation/jobs/{job.pk}/release/", {"which": "none"}, format="json")
    assert again.status_code == 409 and again.json()["error"] == "conflict"
    assert "already released" in again.json()["detail"]
    listed = client.get(f"/api/v1/projects/{research_project.slug}/generation/jobs/").json()["results"]
    assert listed[0]["release"]["state"] == "released" and "staged" not in listed[0]


def test_api_job_create_takes_auto_release(research_project, researcher, monkeypatch):
    from tests.generation.conftest import add_prompts

    add_prompts(research_project, 2)
    services.endpoint_create(name="tiny", backend="transformers", model="/m", project=research_project)
    client = bearer(researcher)
    base = f"/api/v1/projects/{research_project.slug}/generation/jobs/"
    created = client.post(base, {"endpoints": ["tiny"], "auto_release": "passing"}, format="json")
    assert created.status_code == 201 and created.json()["auto_release"] == "passing"
    default = client.post(base, {"endpoints": ["tiny"]}, format="json")
    assert default.status_code == 201 and default.json()["auto_release"] is None
    assert default.json()["release"]["state"] == "generating"
    bad = client.post(base, {"endpoints": ["tiny"], "auto_release": "sometimes"}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "auto_release"


def test_a_cancelled_jobs_candidates_can_be_released(research_project, researcher, monkeypatch):
    """Cancelling keeps what was written; a researcher may still release it (once)."""
    job = staged_job(research_project, monkeypatch, run=False)
    batches = list(GenerationBatch.objects.filter(job=job).order_by("index"))
    for batch in batches[:2]:  # e1's q0 and q1
        services.batch_run(batch_id=batch.pk)
    services.job_cancel(job=job, actor=researcher)
    job = services.job_release(job=job, which="passing", actor=researcher)
    assert (job.state, job.released, job.released_tasks, job.excluded_candidates) == (
        "cancelled",
        "passing",
        1,
        1,
    )
    assert Task.objects.filter(generation_job=job).count() == 1  # q0's pair; q1 kept one response
