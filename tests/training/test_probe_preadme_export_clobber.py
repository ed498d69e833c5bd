"""An export never deletes another export's files.

Exports are immutable and stored by project slug and version (``PREFHUB_DATA_DIR/exports/<slug>/
v<N>``). Following the README, a newcomer runs the SQLite demo (``make run``) and then the same
checkout against PostgreSQL ("Running against PostgreSQL and Redis"): both databases have a
``demo-ab`` whose first export is v1, and both write to ``var/data``. The second export removed the
first one's folder (taken for a leftover of its own crashed run) and put its own files there: the
SQLite demo's v1 then held another database's data, and a training run on it failed with "the
export has no comparisons yet" (the same happens to a project deleted and made again under its
slug). Only a leftover of the same export (its manifest names the same version and creation time)
is replaced now; another export's folder is left as it was and the new export goes beside it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import add_tasks
from training.models import Export, ExportState
from training.services.exports import export_create, export_run, exports_root

pytestmark = pytest.mark.django_db


def _export(project) -> Export:
    return export_create(project=project, format="raw", options={}, enqueue=False)


def test_another_exports_folder_is_never_replaced(make_project):
    project = make_project()
    add_tasks(project, prompts=2)
    first = export_run(export_id=_export(project).pk)
    root = exports_root(project)
    # another database's v2 of a project with the same slug, already in the shared data folder
    other = root / "v2"
    shutil.copytree(first.path, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest.update(version=2, created_at="2020-01-01T00:00:00+00:00")
    (other / "manifest.json").write_text(json.dumps(manifest))
    before = {p.name: p.read_bytes() for p in other.iterdir()}

    second = export_run(export_id=_export(project).pk)
    assert second.version == 2 and second.state == ExportState.DONE
    assert {p.name: p.read_bytes() for p in other.iterdir()} == before
    assert Path(second.path) == root / "v2-2"
    assert json.loads((Path(second.path) / "manifest.json").read_text())["version"] == 2
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp")]
    # run again (a redelivered message): the export is done and stays where it is
    assert export_run(export_id=second.pk).path == second.path


def test_a_leftover_of_the_same_export_is_still_replaced(make_project):
    """A run that died between moving its folder into place and recording it is run again."""
    project = make_project()
    add_tasks(project, prompts=2)
    export = export_run(export_id=_export(project).pk)
    Export.objects.filter(pk=export.pk).update(state=ExportState.RUNNING)
    (Path(export.path) / "stale-marker").write_text("from the run that died")
    again = export_run(export_id=export.pk)
    assert again.state == ExportState.DONE
    assert not (Path(again.path) / "stale-marker").exists()
