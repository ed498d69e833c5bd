"""Probe: an export option that cannot be stored or looked up is refused naming its field (a
CommandError naming the option from the CLI), never a database error; no export is recorded."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from annotate.errors import InvalidInput
from tests.conftest import add_tasks
from training.models import Export
from training.services.exports import export_create

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("dimension", ["harm\x00less", "\ud800"], ids=["nul", "surrogate"])
def test_a_dimension_that_cannot_be_stored_is_refused_by_the_cli(make_project, tmp_path, dimension):
    """Before: --dimension with a NUL ended the command with a traceback (DataError: PostgreSQL text
    fields cannot contain NUL (0x00) bytes, from the dimension lookup)."""
    project = make_project(dimensions=["Harmless"])
    add_tasks(project, prompts=1)
    with pytest.raises(CommandError, match=r"^--dimension: .*cannot be stored"):
        call_command(
            "export_preferences", "--project", project.slug, "--format", "trl",
            "--out", str(tmp_path / "out"), "--dimension", dimension,
        )  # fmt: skip
    assert not Export.objects.filter(project=project).exists()
    with pytest.raises(InvalidInput) as exc:
        export_create(project=project, format="trl", options={"dimension": dimension}, enqueue=False)
    assert exc.value.field == "dimension"
    assert not Export.objects.filter(project=project).exists()
