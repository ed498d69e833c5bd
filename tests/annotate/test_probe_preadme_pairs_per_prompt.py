"""``--pairs-per-prompt`` (page and API: ``pairs_per_prompt``) without the sampled-pairs task mode.

The README's command line offers ``import_prompts ... [--task-mode ...] [--pairs-per-prompt N]``;
``--pairs-per-prompt 1`` alone imported every pair of each prompt (the default all_pairs mode)
without a word, so a newcomer asking for one pair per prompt got all of them. The option only
means something with ``sampled_pairs``; anywhere else it is now refused naming it, and nothing is
imported (or generated)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotate.errors import InvalidInput
from annotate.models import Prompt, Task
from generation.services import endpoint_create, job_create

LINE = {"id": "p1", "prompt": "Hi?", "candidates": ["a", "b", "c", "d"]}


@pytest.fixture
def jsonl(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(LINE) + "\n")
    return path


@pytest.mark.django_db
@pytest.mark.parametrize("mode", [None, "all_pairs", "none"])
def test_import_command_refuses_pairs_per_prompt_outside_sampled_pairs(make_project, jsonl, mode):
    project = make_project()
    argv = ["import_prompts", str(jsonl), "--project", project.slug, "--pairs-per-prompt", "1"]
    if mode:
        argv += ["--task-mode", mode]
    with pytest.raises(CommandError, match=r"^--pairs-per-prompt: .*sampled_pairs"):
        call_command(*argv, stdout=io.StringIO(), stderr=io.StringIO())
    assert not Prompt.objects.filter(project=project).exists()


@pytest.mark.django_db
def test_import_command_with_sampled_pairs_takes_it(make_project, jsonl):
    project = make_project()
    call_command(
        "import_prompts", str(jsonl), "--project", project.slug, "--task-mode", "sampled_pairs",
        "--pairs-per-prompt", "1", stdout=io.StringIO(), stderr=io.StringIO(),
    )  # fmt: skip
    assert Task.objects.filter(project=project).count() == 1


@pytest.mark.django_db
def test_generation_job_refuses_it_outside_sampled_pairs(make_project):
    project = make_project()
    Prompt.objects.create(project=project, external_id="p1", messages=[{"role": "user", "content": "Hi"}])
    endpoint = endpoint_create(name="ep-ppp", backend="transformers", model="tiny", actor=None)
    with pytest.raises(InvalidInput) as exc:
        job_create(project=project, endpoints=[endpoint], k=4, pairs_per_prompt=2, actor=None)
    assert exc.value.field == "pairs_per_prompt"
