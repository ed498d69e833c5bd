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


def test_an_audit_event_time_that_is_not_a_time_is_a_command_error_with_its_line(
    make_project, make_user, tmp_path
):
    import gzip
    import io
    import json

    from annotate.models import AuditEvent
    from annotate.services.backup import project_dump

    project = make_project(name="Orig", actor=make_user("boss"))
    buf = io.BytesIO()
    project_dump(project=project, out=buf)
    records = [json.loads(line) for line in gzip.decompress(buf.getvalue()).splitlines()]
    line = next(n for n, r in enumerate(records, start=1) if r["type"] == "audit_event")
    records[line - 1]["data"]["created_at"] = "yesterday"
    dump = tmp_path / "dump.jsonl.gz"
    dump.write_bytes(gzip.compress(b"\n".join(json.dumps(r).encode() for r in records)))
    n_events = AuditEvent.objects.count()
    with pytest.raises(CommandError, match=rf"line {line}: .*created_at is not a date and time: 'yesterday'"):
        call_command("project_backup", "restore", str(dump), "--slug", "restored")
    assert not Project.objects.filter(slug="restored").exists() and AuditEvent.objects.count() == n_events
