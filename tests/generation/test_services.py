"""Generation services: job creation, the batch worker function, exactly-once writes, progress,
completion into tasks, cancellation and failures."""

import pytest
from django.db.models import Count

from annotate.errors import Conflict, InvalidInput
from annotate.models import Candidate, Task, TaskCandidate, TaskKind
from generation import services
from generation.backends.base import BackendConfigError, PromptError, TransientBackendError
from generation.models import BatchState, GenerationBatch, GenerationFailure, JobState
from tests.generation.conftest import add_prompts, openai_endpoint


@pytest.fixture
def endpoint(research_project):
    return services.endpoint_create(
        name="fake-a", backend="transformers", model="/models/a", project=research_project
    )


@pytest.fixture
def endpoint_b(research_project):
    return services.endpoint_create(
        name="fake-b", backend="transformers", model="/models/b", project=research_project
    )


def make_job(project, endpoints, **kwargs):
    """A job that releases all its candidates when it ends (what jobs did before staging); the
    staged flow has its own tests (test_staged.py)."""
    kwargs.setdefault("k", 2)
    kwargs.setdefault("enqueue", False)
    kwargs.setdefault("auto_release", "all")
    return services.job_create(project=project, endpoints=endpoints, **kwargs)


def run_all(job):
    for batch in GenerationBatch.objects.filter(job=job).order_by("index"):
        services.batch_run(batch_id=batch.pk)
    job.refresh_from_db()
    return job


# --- endpoints --------------------------------------------------------------------------------


def test_endpoint_create_validates_backend_config(research_project):
    with pytest.raises(InvalidInput) as info:
        services.endpoint_create(name="x", backend="openai", model="m", config={}, project=research_project)
    assert info.value.field == "config" and "base_url" in info.value.message
    with pytest.raises(InvalidInput, match="private"):
        openai_endpoint(research_project, "http://10.1.1.1:8000", name="x")
    with pytest.raises(InvalidInput, match="backend"):
        services.endpoint_create(name="x", backend="llamafile", model="m", project=research_project)
    with pytest.raises(InvalidInput, match="temperature"):
        services.endpoint_create(
            name="x",
            backend="transformers",
            model="m",
            default_sampling={"temperature": -1},
            project=research_project,
        )


def test_endpoint_names_are_unique_slugs(research_project):
    e = services.endpoint_create(name="My Model", backend="transformers", model="m", project=research_project)
    assert e.name == "my-model"
    with pytest.raises(Conflict):
        services.endpoint_create(
            name="my-model", backend="transformers", model="m2", project=research_project
        )


def test_endpoint_update_revalidates(endpoint):
    updated = services.endpoint_update(
        endpoint=endpoint, config={"device": "cpu", "batch_size": 8}, is_active=False
    )
    assert updated.config["batch_size"] == 8 and not updated.is_active
    with pytest.raises(InvalidInput):
        services.endpoint_update(endpoint=endpoint, config={"device": "abacus"})


# --- job creation -----------------------------------------------------------------------------


def test_job_create_splits_into_batches_and_records_a_seed(research_project, endpoint, endpoint_b):
    add_prompts(research_project, 5)
    job = make_job(research_project, [endpoint, endpoint_b], batch_size=2, sampling={"temperature": 0.7})
    assert job.total_units == 10 and job.state == JobState.QUEUED
    batches = list(GenerationBatch.objects.filter(job=job).order_by("index"))
    assert [len(b.prompt_ids) for b in batches] == [2, 2, 1, 2, 2, 1]
    assert {b.endpoint_id for b in batches[:3]} == {endpoint.pk}
    assert isinstance(job.sampling["seed"], int) and job.sampling["temperature"] == 0.7
    params = services.sampling_for(job=job, endpoint=endpoint, index=3)
    assert params.n == 2 and params.seed == job.sampling["seed"] + 3 * 1024


def test_job_create_enqueues_on_commit(
    research_project, endpoint, monkeypatch, django_capture_on_commit_callbacks
):
    add_prompts(research_project, 3)
    sent = []
    monkeypatch.setattr("core.outbox.send_task", lambda name, args: sent.extend(args))
    with django_capture_on_commit_callbacks(execute=True):
        job = services.job_create(project=research_project, endpoints=[endpoint], k=2, batch_size=2)
    assert sent == list(
        GenerationBatch.objects.filter(job=job).order_by("index").values_list("pk", flat=True)
    )


@pytest.mark.parametrize(
    ("prompt_filter", "expected"),
    [
        ({"mode": "all"}, 5),
        ({"mode": "untagged"}, 3),
        ({"mode": "tag", "tag": "math"}, 2),
        ("untagged", 3),
    ],
)
def test_prompt_filters(research_project, endpoint, prompt_filter, expected):
    add_prompts(research_project, 3)
    add_prompts(research_project, 2, tags=["math"], start=10)
    job = make_job(research_project, [endpoint], prompt_filter=prompt_filter)
    assert job.total_units == expected


def test_prompt_filter_by_ids(research_project, endpoint, make_project):
    prompts = add_prompts(research_project, 4)
    job = make_job(
        research_project, [endpoint], prompt_filter={"mode": "ids", "ids": [prompts[0].pk, prompts[2].pk]}
    )
    assert job.total_units == 2
    foreign = add_prompts(make_project(), 1)[0]
    with pytest.raises(InvalidInput, match=f"No prompt {foreign.pk} in this project"):
        make_job(
            research_project, [endpoint], prompt_filter={"mode": "ids", "ids": [prompts[0].pk, foreign.pk]}
        )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"k": 0}, "k"),
        ({"k": 65}, "k"),
        ({"k": 1}, "k"),  # one endpoint x one sample: nothing to compare
        ({"batch_size": 0}, "batch_size"),
        ({"task_mode": "ranking"}, "task_mode"),  # pairwise project
        ({"task_mode": "sampled_pairs"}, "pairs_per_prompt"),
        ({"sampling": {"temperature": 9}}, "temperature"),
        ({"sampling": {"n": 3}}, "sampling"),
        ({"prompt_filter": {"mode": "tag"}}, "prompt_filter"),
        ({"prompt_filter": {"mode": "nope"}}, "prompt_filter"),
    ],
)
def test_job_create_rejects_bad_input(research_project, endpoint, kwargs, field):
    add_prompts(research_project, 2)
    with pytest.raises(InvalidInput) as info:
        make_job(research_project, [endpoint], **kwargs)
    assert info.value.field == field


def test_job_create_needs_prompts_and_usable_endpoints(research_project, endpoint, make_project):
    with pytest.raises(InvalidInput, match="No prompt"):
        make_job(research_project, [endpoint])
    add_prompts(research_project, 1)
    other = services.endpoint_create(
        name="elsewhere", backend="transformers", model="m", project=make_project()
    )
    with pytest.raises(InvalidInput, match="another project"):
        make_job(research_project, [other])
    with pytest.raises(InvalidInput):
        make_job(research_project, [])
    assert make_job(research_project, [endpoint], k=1, task_mode="none").total_units == 1
    services.endpoint_update(endpoint=endpoint, is_active=False)
    endpoint.refresh_from_db()
    with pytest.raises(InvalidInput, match="switched off"):
        make_job(research_project, [endpoint])


# --- running ----------------------------------------------------------------------------------


def test_batches_write_candidates_and_the_last_one_creates_tasks(
    research_project, endpoint, endpoint_b, fake_backend
):
    add_prompts(research_project, 3)
    job = make_job(research_project, [endpoint, endpoint_b], k=2, batch_size=2)
    job = run_all(job)
    assert job.state == JobState.DONE and job.done_units == 6 and job.failed_units == 0
    assert job.started_at and job.finished_at
    cands = Candidate.objects.filter(generation_job=job)
    assert cands.count() == 3 * 2 * 2
    c = cands.get(endpoint=endpoint, sample_index=1, prompt__external_id="q0")
    assert c.source == "generated" and c.model_name == "/models/a" and c.model_version == "fake-1"
    assert c.finish_reason == "length" and c.seed is not None and c.sampling_params["n"] == 2
    # NUL and an unpaired surrogate from the model are replaced (PostgreSQL text cannot hold them)
    assert c.text == "answer 1 to Question number 0?\ufffd\ufffd"
    assert c.metadata == {"endpoint": "fake-a", "prompt_tokens": 5, "completion_tokens": 7}
    # all pairs across both models and both samples: C(4, 2) = 6 per prompt
    tasks = Task.objects.filter(generation_job=job)
    assert tasks.count() == 3 * 6
    per_task = tasks.annotate(n=Count("slots")).values_list("n", flat=True)
    assert set(per_task) == {2}
    for task in tasks.prefetch_related("slots__candidate"):
        assert {s.candidate.prompt_id for s in task.slots.all()} == {task.prompt_id}
    assert all(t.target_labels == research_project.overlap for t in tasks)


@pytest.mark.postgres(reason="the one-runner lock is a PostgreSQL advisory lock")
def test_a_batch_another_worker_is_generating_is_skipped(research_project, endpoint, fake_backend):
    """The same batch message at two workers at once (a late acknowledgement redelivered, the sweep
    re-sending a slow batch): the second generates nothing and leaves the batch pending."""
    from tests.races import another_worker_runs

    add_prompts(research_project, 2)
    job = make_job(research_project, [endpoint], k=2, batch_size=2)
    batch = GenerationBatch.objects.get(job=job)
    with another_worker_runs(GenerationBatch, batch.pk):
        assert services.batch_run(batch_id=batch.pk).status == "skipped"
    batch.refresh_from_db()
    assert batch.state == BatchState.PENDING and batch.attempts == 0 and fake_backend.calls == []
    assert services.batch_run(batch_id=batch.pk).status == "done"


def test_a_redelivered_batch_writes_nothing_twice(research_project, endpoint, fake_backend):
    add_prompts(research_project, 4)
    job = make_job(research_project, [endpoint], k=3, batch_size=2)
    first = GenerationBatch.objects.filter(job=job).order_by("index").first()
    assert services.batch_run(batch_id=first.pk).status == "done"
    assert services.batch_run(batch_id=first.pk).status == "skipped"
    job.refresh_from_db()
    assert job.done_units == 2 and Candidate.objects.filter(generation_job=job).count() == 6
    assert len(fake_backend.calls) == 1  # the second delivery did not even generate


def test_a_batch_that_lost_the_race_to_commit_writes_nothing(
    research_project, endpoint, fake_backend, monkeypatch
):
    """Two workers generate the same batch (visibility timeout passed while the first ran): the
    second commit finds the batch done and adds no candidate and no count."""
    add_prompts(research_project, 2)
    job = make_job(research_project, [endpoint], k=2, batch_size=2, task_mode="none")
    batch = GenerationBatch.objects.get(job=job)
    original = services._batch_commit
    results = []

    def commit_twice(**kwargs):
        results.append(original(**kwargs))
        results.append(original(**kwargs))
        return results[0]

    monkeypatch.setattr(services, "_batch_commit", commit_twice)
    services.batch_run(batch_id=batch.pk)
    assert [r.status for r in results] == ["done", "skipped"]
    job.refresh_from_db()
    assert job.done_units == 2 and job.state == JobState.DONE
    assert Candidate.objects.filter(generation_job=job).count() == 4


def test_tasks_are_created_exactly_once(research_project, endpoint, fake_backend):
    add_prompts(research_project, 2)
    job = run_all(make_job(research_project, [endpoint], k=2, batch_size=1))
    assert Task.objects.filter(generation_job=job).count() == 2
    # a late, duplicate settlement attempt changes nothing
    for batch in GenerationBatch.objects.filter(job=job):
        assert services.batch_run(batch_id=batch.pk).status == "skipped"
        assert services.batch_mark_failed(batch_id=batch.pk, message="late") is False
    job.refresh_from_db()
    assert job.state == JobState.DONE and job.failed_units == 0
    assert Task.objects.filter(generation_job=job).count() == 2


def test_sampled_pairs_and_ranking_modes(make_project, researcher, fake_backend):
    from annotate.services.projects import membership_add

    pairwise = make_project()
    add_prompts(pairwise, 2)
    e1 = services.endpoint_create(name="m1", backend="transformers", model="m")
    job = run_all(make_job(pairwise, [e1], k=4, task_mode="sampled_pairs", pairs_per_prompt=3))
    assert Task.objects.filter(generation_job=job).count() == 2 * 3

    ranking = make_project(kind=TaskKind.RANKING, ranking_k=3)
    membership_add(project=ranking, user=researcher, role="researcher")
    add_prompts(ranking, 2)
    job = run_all(make_job(ranking, [e1], k=4))
    assert job.task_mode == "ranking"
    tasks = Task.objects.filter(generation_job=job)
    assert tasks.count() == 2
    assert TaskCandidate.objects.filter(task__in=tasks).count() == 2 * 3

    none_job = run_all(make_job(pairwise, [e1], k=2, task_mode="none"))
    assert none_job.state == JobState.DONE and not Task.objects.filter(generation_job=none_job).exists()


def test_a_failing_prompt_fails_alone(research_project, endpoint, fake_backend):
    add_prompts(research_project, 3)
    fake_backend.fail = {
        "number 1?": PromptError("The prompt is 5000 tokens long but the model's context holds 1024")
    }
    job = run_all(make_job(research_project, [endpoint], k=2, batch_size=3))
    assert job.state == JobState.DONE and job.done_units == 2 and job.failed_units == 1
    failure = GenerationFailure.objects.get(job=job)
    assert failure.prompt.external_id == "q1" and "context holds 1024" in failure.message
    assert failure.endpoint == endpoint and failure.attempts == 1
    assert not Candidate.objects.filter(generation_job=job, prompt=failure.prompt).exists()
    assert Task.objects.filter(generation_job=job).count() == 2


def test_every_prompt_failing_fails_the_job(research_project, endpoint, fake_backend):
    add_prompts(research_project, 2)
    fake_backend.fail = {"Question": PromptError("The server refused this prompt (400): nope")}
    job = run_all(make_job(research_project, [endpoint], k=2, batch_size=1))
    assert job.state == JobState.FAILED and job.failed_units == 2
    assert "Every prompt failed" in job.error and "nope" in job.error
    assert not Task.objects.filter(generation_job=job).exists()


def test_transient_failures_of_a_whole_batch_ask_for_a_retry(research_project, endpoint, fake_backend):
    add_prompts(research_project, 2)
    fake_backend.fail = {
        "Question": PromptError("Could not reach the server (gave up after 4 attempts).", transient=True)
    }
    job = make_job(research_project, [endpoint], k=2, batch_size=2)
    batch = GenerationBatch.objects.get(job=job)
    with pytest.raises(TransientBackendError, match="Could not reach"):
        services.batch_run(batch_id=batch.pk, retry_transient=True)
    batch.refresh_from_db()
    assert batch.state == BatchState.PENDING and batch.attempts == 1
    # the last attempt records the failures instead
    fake_backend.fail = {"number 0": fake_backend.fail["Question"]}
    outcome = services.batch_run(batch_id=batch.pk, retry_transient=True)  # one of two ok: no retry
    assert outcome.status == "done" and outcome.failed == 1
    assert GenerationFailure.objects.get(job=job).attempts == 2


def test_an_endpoint_that_cannot_load_fails_the_job(research_project, endpoint, monkeypatch):
    from generation import backends

    def broken(endpoint):
        raise BackendConfigError("Could not load the model '/models/a': not found")

    monkeypatch.setattr(backends, "get_backend", broken)
    add_prompts(research_project, 4)
    job = make_job(research_project, [endpoint], k=2, batch_size=2)
    first, second = GenerationBatch.objects.filter(job=job).order_by("index")
    assert services.batch_run(batch_id=first.pk).status == "failed"
    job.refresh_from_db()
    assert job.state == JobState.FAILED and "Endpoint fake-a: Could not load the model" in job.error
    second.refresh_from_db()
    assert second.state == BatchState.FAILED
    assert services.batch_run(batch_id=second.pk).status == "skipped"
    assert not Candidate.objects.filter(generation_job=job).exists()


def test_batch_mark_failed_settles_the_units(research_project, endpoint, fake_backend):
    add_prompts(research_project, 3)
    job = make_job(research_project, [endpoint], k=2, batch_size=2)
    first, second = GenerationBatch.objects.filter(job=job).order_by("index")
    assert services.batch_mark_failed(batch_id=first.pk, message="WorkerLostError: killed") is True
    services.batch_run(batch_id=second.pk)
    job.refresh_from_db()
    assert job.state == JobState.DONE and job.failed_units == 2 and job.done_units == 1
    assert set(GenerationFailure.objects.filter(job=job).values_list("message", flat=True)) == {
        "WorkerLostError: killed"
    }


def test_cancel_stops_pending_batches(research_project, endpoint, fake_backend):
    add_prompts(research_project, 4)
    job = make_job(research_project, [endpoint], k=2, batch_size=2)
    first, second = GenerationBatch.objects.filter(job=job).order_by("index")
    services.batch_run(batch_id=first.pk)
    services.job_cancel(job=job)
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED and job.finished_at
    assert services.batch_run(batch_id=second.pk).status == "skipped"
    second.refresh_from_db()
    assert second.state == BatchState.CANCELLED
    assert Candidate.objects.filter(generation_job=job).count() == 4  # what was written stays
    assert not Task.objects.filter(generation_job=job).exists()
    with pytest.raises(Conflict):
        services.job_cancel(job=job)


def test_a_batch_finishing_after_cancel_writes_nothing(research_project, endpoint, fake_backend, monkeypatch):
    add_prompts(research_project, 2)
    job = make_job(research_project, [endpoint], k=2, batch_size=2)
    batch = GenerationBatch.objects.get(job=job)
    real_generate = fake_backend.generate

    def generate_then_cancel(conversations, params):
        out = real_generate(conversations, params)
        services.job_cancel(job=job)  # the researcher cancels while the batch generates
        return out

    monkeypatch.setattr(fake_backend, "generate", generate_then_cancel)
    assert services.batch_run(batch_id=batch.pk).status == "skipped"
    assert not Candidate.objects.filter(generation_job=job).exists()


def test_deleted_prompts_fail_with_a_message(research_project, endpoint, fake_backend):
    prompts = add_prompts(research_project, 2)
    job = make_job(research_project, [endpoint], k=2)
    deleted_pk = prompts[1].pk
    prompts[1].delete()
    job = run_all(job)
    assert job.done_units == 1 and job.failed_units == 1
    failure = GenerationFailure.objects.get(job=job)
    assert failure.message == f"Prompt {deleted_pk} was deleted." and failure.prompt is None


def test_job_requeue_sends_pending_batches(
    research_project, endpoint, fake_backend, monkeypatch, django_capture_on_commit_callbacks
):
    add_prompts(research_project, 4)
    job = make_job(research_project, [endpoint], k=2, batch_size=2)
    first, second = GenerationBatch.objects.filter(job=job).order_by("index")
    services.batch_run(batch_id=first.pk)
    sent = []
    monkeypatch.setattr("core.outbox.send_task", lambda name, args: sent.extend(args))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.job_requeue(job=job) == 1
    assert sent == [second.pk]


@pytest.mark.slow
def test_inline_run_with_the_tiny_model(research_project, tiny_model_path):
    """End to end in one process with the real transformers backend: one prompt is too long."""
    from annotate.models import Prompt

    add_prompts(research_project, 3)
    Prompt.objects.create(
        project=research_project, external_id="long", messages=[{"role": "user", "content": "word " * 3000}]
    )
    endpoint = services.endpoint_create(
        name="tiny", backend="transformers", model=tiny_model_path, default_sampling={"max_new_tokens": 8}
    )
    job = make_job(research_project, [endpoint], k=2, batch_size=2, sampling={"seed": 123})
    seen = []
    job = services.job_run_inline(job=job, on_progress=lambda j: seen.append(j.done_units + j.failed_units))
    assert job.state == JobState.DONE and job.done_units == 3 and job.failed_units == 1
    assert seen == [2, 4]
    assert "context" in GenerationFailure.objects.get(job=job).message
    cands = Candidate.objects.filter(generation_job=job)
    assert cands.count() == 6
    assert all(
        c.sampling_params["max_new_tokens"] == 8 and c.model_version.startswith("sha256:") for c in cands
    )
    assert Task.objects.filter(generation_job=job).count() == 3


def test_inline_run_records_an_unknown_model_path(research_project, tmp_path):
    add_prompts(research_project, 2)
    endpoint = services.endpoint_create(
        name="missing",
        backend="transformers",
        model=str(tmp_path / "nope"),
        config={"local_files_only": True},
    )
    job = services.job_run_inline(job=make_job(research_project, [endpoint], k=2))
    assert job.state == JobState.FAILED
    assert "Endpoint missing: Could not load the tokenizer" in job.error and "nope" in job.error


def test_a_batch_that_keeps_killing_its_worker_fails(research_project, endpoint, fake_backend):
    add_prompts(research_project, 2)
    job = make_job(research_project, [endpoint], k=2, batch_size=2)
    batch = GenerationBatch.objects.get(job=job)
    GenerationBatch.objects.filter(pk=batch.pk).update(attempts=services.MAX_BATCH_ATTEMPTS)
    assert services.batch_run(batch_id=batch.pk).status == "failed"
    job.refresh_from_db()
    assert job.state == JobState.FAILED and job.failed_units == 2
    assert "Gave up after 8 attempts" in job.error
    assert not fake_backend.calls


def test_candidates_record_the_version_that_answered_them_not_the_backends_latest(
    research_project, endpoint, fake_backend
):
    """A cached backend is shared by the batches on its endpoint (``--pool threads`` runs them side
    by side): the version it holds is whichever answer came last. A batch answered by "v-old" whose
    neighbour's answers ("v-new") landed before it read the backend's version recorded "v-new"; each
    response now carries the version the server reported for it."""
    add_prompts(research_project, 1)
    plain = fake_backend.generate

    def answered_by_old_then_overtaken(conversations, params):
        out = [[g.with_version("v-old") for g in gens] for gens in plain(conversations, params)]
        fake_backend.model_version = "v-new"  # the neighbouring batch finished meanwhile
        return out

    fake_backend.generate = answered_by_old_then_overtaken
    job = run_all(make_job(research_project, [endpoint], k=2))
    assert set(Candidate.objects.filter(generation_job=job).values_list("model_version", flat=True)) == {
        "v-old"
    }
    fake_backend.generate = plain  # a backend that reports no version per response: the backend's
    job = run_all(make_job(research_project, [endpoint], k=2))
    assert set(Candidate.objects.filter(generation_job=job).values_list("model_version", flat=True)) == {
        "v-new"
    }


def test_switching_an_endpoint_off_stops_the_batches_not_yet_run_on_it(
    research_project, endpoint, endpoint_b, fake_backend
):
    """Switching an endpoint off stopped new jobs from choosing it, but a running job's queued
    batches went on calling it (a model a manager had just switched off for misbehaving, or for its
    bill). A batch that reaches a worker after the switch-off now fails with the reason and calls
    nothing; the job's other endpoints go on, and the job ends."""
    add_prompts(research_project, 4)
    job = make_job(research_project, [endpoint, endpoint_b], k=2, batch_size=2)
    batches = list(GenerationBatch.objects.filter(job=job).order_by("index"))
    services.batch_run(batch_id=batches[0].pk)  # one batch ran before the switch-off
    calls = len(fake_backend.calls)
    services.endpoint_update(endpoint=endpoint, is_active=False)
    for batch in batches[1:]:
        services.batch_run(batch_id=batch.pk)
    job.refresh_from_db()
    stopped = [b for b in batches[1:] if b.endpoint_id == endpoint.pk]
    assert stopped, "the job has batches on the switched-off endpoint after the first"
    assert len(fake_backend.calls) == calls + len(batches) - 1 - len(stopped)
    for batch in stopped:
        batch.refresh_from_db()
        assert batch.state == BatchState.FAILED
    reasons = set(GenerationFailure.objects.filter(job=job).values_list("message", flat=True))
    assert reasons == {f"Endpoint {endpoint.name} was switched off before this batch ran."}
    assert job.state == JobState.DONE and job.failed_units == 2 * len(stopped)
    assert Candidate.objects.filter(generation_job=job, endpoint=endpoint_b).count() == 4 * 2
