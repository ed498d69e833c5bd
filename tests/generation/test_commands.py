"""Management commands: create_tiny_model and generate (inline and enqueue modes)."""

import json

import pytest
from django.core.management import CommandError, call_command

from annotate.models import Candidate, Task
from generation import services
from generation.models import GenerationBatch, GenerationJob, JobState, ModelEndpoint
from tests.generation.conftest import add_prompts

pytestmark = pytest.mark.slow


def test_create_tiny_model_trains_on_the_project_and_registers_an_endpoint(
    research_project, tmp_path, capsys
):
    add_prompts(research_project, 3)
    out = tmp_path / "tiny"
    call_command(
        "create_tiny_model", str(out), "--project", research_project.slug, "--register-endpoint", "tiny-cli"
    )
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    endpoint = ModelEndpoint.objects.get(name="tiny-cli")
    assert (
        endpoint.backend == "transformers"
        and endpoint.model == str(out)
        and endpoint.project == research_project
    )
    assert "Training the tokenizer on 3 messages" in capsys.readouterr().out
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_tiny_model", str(tmp_path / "again"), "--register-endpoint", "tiny-cli")
    with pytest.raises(CommandError, match="No project"):
        call_command("create_tiny_model", str(tmp_path / "x"), "--project", "nope")


def test_generate_inline(research_project, tiny_model_path, capsys):
    add_prompts(research_project, 3)
    services.endpoint_create(
        name="tiny", backend="transformers", model=tiny_model_path, default_sampling={"max_new_tokens": 6}
    )
    call_command(
        "generate",
        "--project",
        research_project.slug,
        "--endpoint",
        "tiny",
        "--k",
        "3",
        "--inline",
        "--batch-size",
        "2",
        "--seed",
        "5",
        "--temperature",
        "0.9",
        "--stop",
        "END",
        "--release",
        "all",
    )
    out = capsys.readouterr()
    summary = json.loads(out.out.strip().splitlines()[-1])
    assert summary["state"] == "done" and summary["candidates"] == 9 and summary["tasks"] == 9
    assert summary["release"] == "released"
    assert "job " in out.err  # the tqdm bar
    job = GenerationJob.objects.get()
    assert job.sampling == {"seed": 5, "temperature": 0.9, "stop": ["END"]}
    assert Candidate.objects.filter(generation_job=job).count() == 9
    assert Task.objects.filter(generation_job=job).count() == 9


def test_generate_enqueues_by_default(
    research_project, monkeypatch, capsys, django_capture_on_commit_callbacks
):
    add_prompts(research_project, 4, tags=["a"])
    services.endpoint_create(name="e1", backend="transformers", model="/m", project=research_project)
    sent = []
    monkeypatch.setattr("core.outbox.send_task", lambda name, args: sent.extend(args))
    with django_capture_on_commit_callbacks(execute=True):
        call_command(
            "generate",
            "--project",
            research_project.slug,
            "--endpoint",
            "e1",
            "--k",
            "2",
            "--filter",
            "tag:a",
            "--no-follow",
        )
    job = GenerationJob.objects.get()
    assert job.state == JobState.QUEUED and job.total_units == 4
    assert sent == list(
        GenerationBatch.objects.filter(job=job).order_by("index").values_list("pk", flat=True)
    )
    assert "enqueued" in capsys.readouterr().out
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("generate", "--resume", str(job.pk), "--no-follow")
    assert len(sent) == 4  # no --batch-size: 4 prompts in 4 batches, so progress moves


def test_generate_reports_failures_and_bad_arguments(research_project, tmp_path):
    add_prompts(research_project, 2)
    services.endpoint_create(
        name="gone",
        backend="transformers",
        model=str(tmp_path / "missing"),
        config={"local_files_only": True},
    )
    with pytest.raises(CommandError, match="failed: Endpoint gone: Could not load"):
        call_command("generate", "--project", research_project.slug, "--endpoint", "gone", "--inline")
    with pytest.raises(CommandError, match="No endpoint"):
        call_command("generate", "--project", research_project.slug, "--endpoint", "nope")
    with pytest.raises(CommandError, match="between 1 and 64"):
        call_command("generate", "--project", research_project.slug, "--endpoint", "gone", "--k", "0")
    with pytest.raises(CommandError, match="--filter"):
        call_command("generate", "--project", research_project.slug, "--endpoint", "gone", "--filter", "some")


def test_keep_existing_registers_the_endpoint_of_a_model_already_built(db, tmp_path):
    """make run's step: a database made anew beside an old var/models gets its tiny-demo endpoint
    back (before, the model folder existing skipped the registration)."""
    out = tmp_path / "tiny-demo"
    call_command("create_tiny_model", str(out), "--register-endpoint", "tiny-demo")
    built = sorted(p.name for p in out.iterdir())
    ModelEndpoint.objects.all().delete()  # the database made anew

    call_command("create_tiny_model", str(out), "--register-endpoint", "tiny-demo", "--keep-existing")
    assert ModelEndpoint.objects.get(name="tiny-demo").model == str(out.resolve())
    assert sorted(p.name for p in out.iterdir()) == built
    # once more: nothing to do; an endpoint of that name serving another model is refused
    call_command("create_tiny_model", str(out), "--register-endpoint", "tiny-demo", "--keep-existing")
    assert ModelEndpoint.objects.filter(name="tiny-demo").count() == 1
    other = tmp_path / "other"
    call_command("create_tiny_model", str(other), "--keep-existing")
    with pytest.raises(CommandError, match="--register-endpoint: endpoint 'tiny-demo' already serves"):
        call_command("create_tiny_model", str(other), "--register-endpoint", "tiny-demo", "--keep-existing")
