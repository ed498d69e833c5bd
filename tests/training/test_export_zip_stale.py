"""The export download's zip is served only when it holds the export's own files.

Before: a ``v<N>.zip`` lying beside the export folder was served as it was, whatever it held: a zip
left by an earlier export of that folder name (another database sharing the data folder, a project
of the same slug restored over), or a file cut short, went out as this export. Now the zip is checked
against the folder (same names, same manifest) and built again when it does not match."""

from __future__ import annotations

import json
import zipfile

import pytest

from training.models import Export, ExportState
from training.services.exports import export_zip_path, exports_root

pytestmark = pytest.mark.django_db


def _export(project) -> Export:
    folder = exports_root(project) / "v1"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"version": 1, "content_hash": "aaa"}))
    (folder / "train.jsonl").write_text('{"prompt": "ours"}\n')
    return Export.objects.create(
        project=project, version=1, format="trl", state=ExportState.DONE, path=str(folder), row_count=1
    )


def _members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def test_a_zip_of_other_files_is_built_again(make_project):
    project = make_project()
    export = _export(project)
    first = export_zip_path(export=export)
    ours = _members(first)
    arc = f"{project.slug}-v1"
    assert ours[f"{arc}/train.jsonl"] == b'{"prompt": "ours"}\n'
    with zipfile.ZipFile(first, "w") as zf:  # another export's zip under the same name
        zf.writestr(f"{arc}/manifest.json", json.dumps({"version": 1, "content_hash": "bbb"}))
        zf.writestr(f"{arc}/train.jsonl", '{"prompt": "theirs"}\n')
    assert _members(export_zip_path(export=export)) == ours


@pytest.mark.parametrize("junk", [b"", b"PK\x03\x04 cut short", b"not a zip at all"])
def test_a_broken_zip_is_built_again(make_project, junk):
    project = make_project()
    export = _export(project)
    ours = _members(export_zip_path(export=export))
    export_zip_path(export=export).write_bytes(junk)
    assert _members(export_zip_path(export=export)) == ours


def test_a_zip_missing_a_file_is_built_again(make_project):
    project = make_project()
    export = _export(project)
    ours = _members(export_zip_path(export=export))
    path = export_zip_path(export=export)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{project.slug}-v1/manifest.json", json.dumps({"version": 1, "content_hash": "aaa"}))
    assert _members(export_zip_path(export=export)) == ours
