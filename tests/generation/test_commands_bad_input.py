"""create_tiny_model and generate answer bad input with a CommandError naming the argument, and
never leave a half-built model folder or overwrite someone else's files."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


@pytest.mark.parametrize("existing", ["file", "folder"])
def test_create_tiny_model_refuses_an_existing_out_dir_and_leaves_it_alone(tmp_path, existing):
    out = tmp_path / "model"
    if existing == "file":
        out.write_text("mine")
    else:
        out.mkdir()
        (out / "config.json").write_text("mine")
    with pytest.raises(CommandError, match=r"^out_dir: .*already exists"):
        call_command("create_tiny_model", str(out))
    target = out if existing == "file" else out / "config.json"
    assert target.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--vocab-size", "-5"),
        ("--vocab-size", "0"),
        ("--vocab-size", "99999999999"),  # aborted the process: the tokenizer trainer's allocation failed
        ("--seed", "-1"),
        ("--seed", str(2**64)),
    ],
)
def test_create_tiny_model_numbers_out_of_range(tmp_path, option, value):
    with pytest.raises(CommandError, match=rf"^{option}: must be between"):
        call_command("create_tiny_model", str(tmp_path / "model"), option, value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_create_tiny_model_with_an_endpoint_name_taken_leaves_no_model_behind(tmp_path, db):
    from generation import services

    services.endpoint_create(name="taken", backend="transformers", model="/m")
    with pytest.raises(CommandError, match=r"^--register-endpoint: .*already exists"):
        call_command("create_tiny_model", str(tmp_path / "model"), "--register-endpoint", "taken")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("poll", ["-1", "0", "nan"])
def test_generate_poll_must_be_positive_and_is_checked_before_the_job_is_created(research_project, poll):
    from generation import services
    from generation.models import GenerationJob
    from tests.generation.conftest import add_prompts

    add_prompts(research_project, 2)
    services.endpoint_create(name="e1", backend="transformers", model="/m", project=research_project)
    with pytest.raises(CommandError, match=r"^--poll: "):
        call_command("generate", "--project", research_project.slug, "--endpoint", "e1", "--poll", poll)
    assert not GenerationJob.objects.exists()


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--top-k", "-1"], "--top-k"),  # the service's field sampling's top_k: the command's own option
        (["--filter", "tag:"], "--filter"),  # the service's prompt_filter: the command names it
        (["--k", "0"], "--k"),
    ],
)
def test_generate_names_the_option_behind_a_refused_value(research_project, args, option):
    """Services refuse by field; the command answers with its own option (core.cli.ServiceCommand)
    and creates no job."""
    from generation import services
    from generation.models import GenerationJob
    from tests.generation.conftest import add_prompts

    add_prompts(research_project, 2)
    services.endpoint_create(name="e1", backend="transformers", model="/m", project=research_project)
    with pytest.raises(CommandError, match=rf"^{option}: "):
        call_command("generate", "--project", research_project.slug, "--endpoint", "e1", "--no-follow", *args)
    assert not GenerationJob.objects.exists()
