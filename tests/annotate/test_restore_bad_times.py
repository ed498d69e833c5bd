"""``manage.py project_backup restore`` with a hand-edited dump: a time that is not a
date ("created_at": "garbage") was read as None and written back after every row existed, an
IntegrityError traceback (NOT NULL) instead of a command error with the record's line."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotate.models import Project
from tests.annotate.test_project_settings_rule import _edited_dump

pytestmark = pytest.mark.django_db


def test_a_created_at_that_is_not_a_time_is_a_command_error_with_its_line(make_project, tmp_path):
    project = make_project(name="Orig")
    dump = tmp_path / "dump.jsonl.gz"
    dump.write_bytes(_edited_dump(project, {"created_at": "garbage"}))
    with pytest.raises(CommandError, match=r"line 2: .*created_at"):
        call_command("project_backup", "restore", str(dump), "--slug", "restored")
    assert not Project.objects.filter(slug="restored").exists()


@pytest.mark.parametrize(("name", "message"), [(5, "is text"), ("  ", "needs a name")])
def test_a_bad_name_in_the_dump_is_the_dump_s_not_the_name_option_s(make_project, tmp_path, name, message):
    project = make_project(name="Orig")
    dump = tmp_path / "dump.jsonl.gz"
    dump.write_bytes(_edited_dump(project, {"name": name}))
    with pytest.raises(CommandError) as err:
        call_command("project_backup", "restore", str(dump), "--slug", "restored")
    assert "--name" not in str(err.value) and "line 2: the dumped project name" in str(err.value)
    assert message in str(err.value)
