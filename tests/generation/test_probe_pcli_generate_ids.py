"""``generate --filter ids:...`` with the prompts' imported ids.

Before: the command took only whole numbers ("--filter ids:1,2,3 takes whole numbers."), so
``--filter ids:q1,q7``, the ids a researcher's own import file gives its prompts and the ones the
job form and the API take, was refused; and the service's own message, reached with a number too
large, said imported ids such as "q1" were fine.
Now: ``ids:`` takes the imported ids or prompt numbers, as the API does (the service resolves
them); an id no prompt has is a one-line ``--filter`` error naming it. Numbers still work.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotate.models import Prompt
from generation import services
from generation.models import GenerationJob
from tests.generation.conftest import add_prompts


@pytest.fixture
def project(research_project, monkeypatch):
    add_prompts(research_project, 4)
    services.endpoint_create(name="e1", backend="transformers", model="/m", project=research_project)
    monkeypatch.setattr("core.outbox.send_task", lambda name, args: None)
    return research_project


def _generate(project, value: str) -> GenerationJob:
    call_command("generate", "--project", project.slug, "--endpoint", "e1", "--filter", value, "--no-follow")
    return GenerationJob.objects.order_by("-pk").first()


def _pk(project, external_id: str) -> int:
    return Prompt.objects.get(project=project, external_id=external_id).pk


def test_imported_ids_pick_those_prompts(project):
    job = _generate(project, "ids:q1, q3")
    assert job.prompt_filter == {"mode": "ids", "ids": sorted([_pk(project, "q1"), _pk(project, "q3")])}
    assert job.total_units == 2


def test_prompt_numbers_still_work(project):
    job = _generate(project, f"ids:{_pk(project, 'q2')}")
    assert job.prompt_filter["ids"] == [_pk(project, "q2")]


def test_an_unknown_id_is_named(project):
    with pytest.raises(CommandError, match=r"^--filter: No prompt with the id 'zz' in this project\.$"):
        _generate(project, "ids:q1,zz")
    assert not GenerationJob.objects.exists()
