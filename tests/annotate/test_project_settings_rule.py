"""One rule for a project's name and settings (annotate.services.projects.project_settings_clean),
whichever way they come: creating a project, changing its settings, restoring a backup.

Before, the services ran int() and float() on what they were given and left the name to the
database: a 300-character name or a NUL in it was a DataError on PostgreSQL, overlap='abc' a
ValueError and lease_ttl_seconds=None a TypeError (500s for any caller without a form in front),
a blank name was accepted by a settings change, and a restore checked the name its own way and
left the settings to the database's constraint messages."""

from __future__ import annotations

import gzip
import io
import json

import pytest

from annotate.errors import InvalidInput
from annotate.models import Project
from annotate.services.backup import project_dump, project_restore
from annotate.services.projects import project_create, project_update_settings

pytestmark = pytest.mark.django_db

BAD = [
    ("name", "x" * 201, "at most 200 characters"),
    ("name", "a\x00b", "NUL"),
    ("name", "   ", "needs a name"),
    ("name", None, "needs a name"),
    ("overlap", "abc", "whole number from 1 to 100"),
    ("overlap", 0, "whole number from 1 to 100"),
    ("overlap", 2.5, "whole number"),
    ("overlap", True, "whole number"),
    ("lease_ttl_seconds", None, "from 30"),
    ("lease_ttl_seconds", 10, "from 30"),
    ("ranking_k", 99, "from 2 to 16"),
    ("rating_scale_max", "ten", "from 2 to 10"),
    ("allow_tie", "yes", "true or false"),
    ("task_order", "zzz", "task_order must be one of"),
    ("target_agreement", 1.5, "above 0, at most 1"),
    ("target_agreement", "nan", "above 0, at most 1"),
    ("judge_audit_share", -0.1, "between 0 and 1"),
    ("judge_min_strength", 4, "3 (much better)"),
    ("description", "a\x00b", "NUL"),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD)
def test_creating_a_project_refuses_with_the_field_named(field, value, message):
    values = {"name": "Fine", field: value}
    with pytest.raises(InvalidInput) as err:
        project_create(**values)
    assert err.value.field == field and message in err.value.message
    assert not Project.objects.exists()


@pytest.mark.parametrize(("field", "value", "message"), BAD)
def test_changing_settings_refuses_the_same_values_the_same_way(make_project, field, value, message):
    project = make_project(name="Kept")
    with pytest.raises(InvalidInput) as err:
        project_update_settings(project=project, **{field: value})
    assert err.value.field == field and message in err.value.message
    project.refresh_from_db()
    assert project.name == "Kept" and project.overlap == 1


def _edited_dump(project, edit: dict) -> bytes:
    buf = io.BytesIO()
    project_dump(project=project, out=buf)
    lines = []
    for line in gzip.decompress(buf.getvalue()).decode().splitlines():
        record = json.loads(line)
        if record["type"] == "project":
            record["data"].update(edit)
        lines.append(json.dumps(record))
    return gzip.compress(("\n".join(lines) + "\n").encode())


@pytest.mark.parametrize(("field", "value", "message"), [*BAD, ("kind", "bogus", "kind must be one of")])
def test_a_restored_backup_is_held_to_the_same_rule_with_its_line(make_project, field, value, message):
    project = make_project(name="Source")
    dump = _edited_dump(project, {field: value})
    with pytest.raises(InvalidInput) as err:
        project_restore(stream=io.BytesIO(dump), slug="copy")
    # the dumped name is the dump's, not the --name option's: no field for the command to name
    assert err.value.field == (None if field == "name" else field)
    assert err.value.message.startswith("line 2: ") and message in err.value.message
    assert not Project.objects.filter(slug="copy").exists()


def test_good_values_are_stored_as_their_columns_hold_them(make_project):
    project = project_create(name="  Spaced  ", overlap="3", target_agreement="0.8", judge_min_strength="1")
    assert (project.name, project.overlap, project.target_agreement, project.judge_min_strength) == (
        "Spaced", 3, 0.8, 1,
    )  # fmt: skip
    project_update_settings(project=project, target_agreement="", lease_ttl_seconds=600)
    project.refresh_from_db()
    assert (project.target_agreement, project.lease_ttl_seconds) == (None, 600)
    restored, _ = project_restore(stream=io.BytesIO(_edited_dump(project, {})), slug="copy", name=" Copy ")
    assert (restored.name, restored.overlap, restored.lease_ttl_seconds) == ("Copy", 3, 600)
    with pytest.raises(InvalidInput) as err:
        project_restore(stream=io.BytesIO(_edited_dump(project, {})), slug="copy2", name="x" * 201)
    assert err.value.field == "name" and not err.value.message.startswith("line")
