"""Probe of today's one rule for a project's settings (``project_settings_clean``) and the one
strength scale (``strength_value``): text that ``str.isdigit`` calls digits but ``int`` refuses
("²", "--5"), and a whole number too large for a float, were a ValueError / OverflowError (a
traceback from ``manage.py project_backup restore``, a 500 for any other caller) instead of an
``InvalidInput`` naming the field."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotate.errors import InvalidInput
from annotate.models import Adjudication, Project
from annotate.services.projects import project_create, project_update_settings
from annotate.services.review import task_adjudicate
from annotate.strength import strength_value
from tests.annotate.test_project_settings_rule import _edited_dump
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db

BAD = [
    ("overlap", "²"),
    ("overlap", "--5"),
    ("lease_ttl_seconds", "³⁰⁰"),
    ("judge_min_strength", "²"),
    ("target_agreement", 10**400),
    ("judge_audit_share", 10**400),
]


@pytest.mark.parametrize(("field", "value"), BAD, ids=lambda v: str(v)[:12])
def test_a_setting_that_is_not_a_number_is_refused_naming_it(make_project, field, value):
    with pytest.raises(InvalidInput) as err:
        project_create(name="Fine", **{field: value})
    assert err.value.field == field
    project = make_project(name="Kept")
    with pytest.raises(InvalidInput) as err:
        project_update_settings(project=project, **{field: value})
    assert err.value.field == field


@pytest.mark.parametrize("value", ["²", "¹", "-2", "+2"])
def test_a_strength_typed_in_a_form_is_read_as_ascii_digits_only(value):
    with pytest.raises(InvalidInput) as err:
        strength_value(value, text=True)
    assert err.value.field == "strength"
    assert strength_value(" 2 ", text=True) == 2


def test_a_final_label_with_a_superscript_strength_is_refused_naming_strength(make_project, make_user):
    project = make_project(strength_scale=True)
    (task,) = add_tasks(project, prompts=1)
    with pytest.raises(InvalidInput) as err:
        task_adjudicate(
            actor=make_user(), project=project, task_id=task.pk, choice="a", strength="²", ranking=None
        )
    assert err.value.field == "strength"
    assert not Adjudication.objects.exists()


@pytest.mark.parametrize(("field", "value"), BAD, ids=lambda v: str(v)[:12])
def test_restoring_a_hand_edited_setting_is_a_command_error_naming_it(make_project, tmp_path, field, value):
    project = make_project(name="Orig")
    dump = tmp_path / "dump.jsonl.gz"
    dump.write_bytes(_edited_dump(project, {field: value}))
    with pytest.raises(CommandError, match=f"{field}: line 2"):
        call_command("project_backup", "restore", str(dump), "--slug", "restored")
    assert not Project.objects.filter(slug="restored").exists()
