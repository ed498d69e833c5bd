"""``project_backup restore --name NAME`` with a name another project already has.

The README: "Without --name the copy keeps the dumped name unless another project already has it;
then it is called NAME (restored copy) ..., so two projects never share a name after a restore."
A ``--name`` that was taken was stored as it was, so two projects shared it. Like a taken --slug,
a taken --name is now refused, naming the option, and nothing is restored."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotate.models import Project
from tests.conftest import add_tasks


@pytest.mark.django_db
def test_a_taken_name_is_refused_naming_the_option(make_project, tmp_path):
    project = make_project(name="Helpfulness")
    make_project(name="Already here")
    add_tasks(project, prompts=1)
    path = tmp_path / "p.jsonl.gz"
    call_command("project_backup", "dump", project.slug, str(path))
    before = Project.objects.count()
    with pytest.raises(CommandError, match=r"^--name: .*'Already here'"):
        call_command("project_backup", "restore", str(path), "--slug", "copy-x", "--name", " Already here ")
    assert Project.objects.count() == before
    names = list(Project.objects.values_list("name", flat=True))
    assert len(set(names)) == len(names)
    # a free name still restores under it
    call_command("project_backup", "restore", str(path), "--slug", "copy-y", "--name", "Fresh name")
    assert Project.objects.get(slug="copy-y").name == "Fresh name"
