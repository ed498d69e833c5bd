"""``project_backup dump`` does not replace an existing file unless told to.

Before: dumping to a file that existed (yesterday's backup, another project's dump) replaced it
silently, so one mistyped name lost a backup. Now it is a command error naming ``file`` that leaves
the file as it was; ``--force`` replaces it (atomically, as before)."""

from __future__ import annotations

import gzip

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

pytestmark = pytest.mark.django_db


def test_an_existing_file_is_kept_and_force_replaces_it(make_project, tmp_path):
    project = make_project()
    path = tmp_path / "backup.jsonl.gz"
    path.write_bytes(b"yesterday's backup")
    with pytest.raises(CommandError, match=r"^file: .*exists.*--force"):
        call_command("project_backup", "dump", project.slug, str(path))
    assert path.read_bytes() == b"yesterday's backup"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.jsonl.gz"]

    call_command("project_backup", "dump", project.slug, str(path), "--force")
    assert gzip.decompress(path.read_bytes()).startswith(b'{"type": "header"')
