"""Hand-edited dumps fed back to ``project_backup restore``: every bad value is a command error that
names its line, and nothing is written (the probe of the judges/endpoints/times/audit-log backup)."""

from __future__ import annotations

import gzip

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from annotate.judges.services import judge_create
from annotate.models import AuditEvent, Judge, Project, Task
from generation.models import ModelEndpoint
from tests.annotate.test_backup import _dump, _endpoints, _line_of
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db

MODELS = (Project, ModelEndpoint, Judge, AuditEvent, Task)


def _counts():
    return [m.objects.count() for m in (*MODELS, get_user_model())]


def _project(make_project, make_user):
    boss = make_user("boss")
    project = make_project(actor=boss)
    add_tasks(project, prompts=2)
    own, _shared = _endpoints(project, boss)
    judge_create(project=project, name="j", endpoint=own, sampling={"temperature": 0.2}, actor=boss)
    return project


def _restore_refused(tmp_path, data: bytes, match: str) -> str:
    path = tmp_path / "edited.jsonl.gz"
    path.write_bytes(data)
    before = _counts()
    with pytest.raises(CommandError, match=match) as err:
        call_command("project_backup", "restore", str(path), "--slug", "restored")
    assert _counts() == before and not Project.objects.filter(slug="restored").exists()
    return str(err.value)


def _raw_edit(data: bytes, kind: str, old: bytes, new: bytes) -> bytes:
    """The dump with ``old`` replaced by ``new`` in the text of the first ``kind`` record."""
    lines = gzip.decompress(data).splitlines()
    n = _line_of(data, kind) - 1
    assert old in lines[n]
    lines[n] = lines[n].replace(old, new, 1)
    return gzip.compress(b"\n".join(lines) + b"\n")


# Before: json.loads read NaN/Infinity (PostgreSQL's jsonb refuses them: a DataError traceback,
# "invalid input syntax for type json", when the audit log was copied) and deep nesting raised a
# RecursionError traceback ("maximum recursion depth exceeded while decoding a JSON array").
@pytest.mark.parametrize(
    ("kind", "old", "new", "message"),
    [
        ("audit_event", b'"details": {', b'"details": {"x": NaN, ', "NaN is not a JSON number"),
        ("audit_event", b'"details": {', b'"details": {"x": -Infinity, ', "-Infinity is not a JSON number"),
        ("audit_event", b'"details": {', b'"details": {"x": 1e999, ', "1e999 is too large a number"),
        (
            "audit_event",
            b'"details": {',
            b'"details": {"x": ' + b"[" * 5000 + b"]" * 5000 + b", ",
            "nested too deeply",
        ),
        (
            "judge",
            b'"sampling": {',
            b'"sampling": {"x": ' + b"[" * 5000 + b"]" * 5000 + b", ",
            "nested too deeply",
        ),
        (
            "endpoint",
            b'"config": {',
            b'"config": {"x": ' + b"[" * 5000 + b"]" * 5000 + b", ",
            "nested too deeply",
        ),
    ],
    ids=["nan", "-infinity", "1e999", "deep-details", "deep-sampling", "deep-config"],
)
def test_json_a_database_cannot_hold_is_refused_with_its_line(
    make_project, make_user, tmp_path, kind, old, new, message
):
    data = _dump(_project(make_project, make_user))
    line = _line_of(data, kind)
    _restore_refused(tmp_path, _raw_edit(data, kind, old, new), rf"^line {line}: .*{message}")
