"""A project dump cut short is refused on restore, not restored in part.

Before: a dump cut at a line boundary with its gzip stream intact (``zcat d.gz | head -n 30 | gzip``,
a copy stopped between records) restored "successfully" as a partial project: some candidates, no
tasks, no labels, and the command said it was done. The dump had no way to say where it ended.
Now a dump ends with an ``end`` record holding its record counts, announced in its header: a dump
whose header announces it and which stops before it, or whose counts do not match what was read, is
a command error naming the line, and nothing is restored. Dumps written before (no announcement,
no end record) still restore."""

from __future__ import annotations

import gzip
import json

import pytest
from django.core.management import call_command

from annotate.models import Project
from tests.annotate.test_backup import _dump
from tests.annotate.test_restore_hostile import _project, _restore_refused

pytestmark = pytest.mark.django_db


def _lines(data: bytes) -> list[bytes]:
    return gzip.decompress(data).splitlines()


def _pack(lines: list[bytes]) -> bytes:
    return gzip.compress(b"\n".join(lines) + b"\n")


def test_a_dump_ends_with_its_counts(make_project, make_user):
    data = _dump(_project(make_project, make_user))
    lines = [json.loads(line) for line in _lines(data)]
    assert lines[0]["type"] == "header" and lines[0]["data"]["ends_with"] == "end"
    assert lines[-1]["type"] == "end"
    read = {}
    for rec in lines[1:-1]:
        read[rec["type"]] = read.get(rec["type"], 0) + 1
    assert lines[-1]["data"]["counts"] == read


@pytest.mark.parametrize("keep", [1, 5, -1])
def test_a_dump_cut_at_a_line_is_refused(make_project, make_user, tmp_path, keep):
    lines = _lines(_dump(_project(make_project, make_user)))
    message = _restore_refused(tmp_path, _pack(lines[:keep]), "cut short")
    assert f"line {len(lines[:keep])}" in message


def test_counts_that_do_not_match_are_refused(make_project, make_user, tmp_path):
    lines = _lines(_dump(_project(make_project, make_user)))
    end = json.loads(lines[-1])
    end["data"]["counts"]["task"] += 1
    lines[-1] = json.dumps(end).encode()
    _restore_refused(tmp_path, _pack(lines), "task")


def test_a_record_after_the_end_is_refused(make_project, make_user, tmp_path):
    lines = _lines(_dump(_project(make_project, make_user)))
    _restore_refused(tmp_path, _pack([*lines, lines[2]]), "after the end record")


def test_a_dump_written_before_end_records_still_restores(make_project, make_user, tmp_path):
    lines = _lines(_dump(_project(make_project, make_user)))
    header = json.loads(lines[0])
    del header["data"]["ends_with"]
    old = _pack([json.dumps(header).encode(), *lines[1:-1]])
    path = tmp_path / "old.jsonl.gz"
    path.write_bytes(old)
    call_command("project_backup", "restore", str(path), "--slug", "restored-old")
    assert Project.objects.filter(slug="restored-old").exists()
