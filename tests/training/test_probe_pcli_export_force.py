"""``export_preferences --force`` into a folder that holds an earlier export.

Before: ``--force`` copied the new export's files over the old ones and left the rest: an earlier
export's ``test.jsonl`` stayed beside a new export made with ``--test-size 0`` (or its
``train.parquet`` beside a new ``train.jsonl``), so the folder held the new manifest with the old
export's held-out rows, which a training run on the folder would read as this export's test split.
Now: the export file names this export did not write (``train``/``test`` ``.jsonl``/``.parquet``,
``manifest.json``, ``README.md``) are removed from ``--out``; the folder holds exactly this
export's files, and files of the user's own (other names) are left alone.
"""

from __future__ import annotations

import io
from pathlib import Path

from django.core.management import call_command

from tests.training.test_export_counts import labeled  # noqa: F401
from training.models import Export


def _export(project, out, *args: str) -> Export:
    call_command(
        "export_preferences", "--project", project.slug, "--format", "trl", "--out", str(out), *args,
        verbosity=0, stdout=io.StringIO(),
    )  # fmt: skip
    return Export.objects.order_by("-version").first()


def _names(folder) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_force_leaves_no_test_split_of_an_earlier_export(labeled, tmp_path):  # noqa: F811
    project, _ = labeled
    out = tmp_path / "data"
    first = _export(project, out, "--test-size", "0.5")
    assert "test.jsonl" in _names(out) and first.manifest["counts"]["test"] > 0
    (out / "notes.txt").write_text("mine")
    second = _export(project, out, "--test-size", "0", "--force")
    assert _names(out) == {"train.jsonl", "manifest.json", "README.md", "notes.txt"}
    assert (out / "notes.txt").read_text() == "mine"
    for name in ("train.jsonl", "manifest.json"):
        assert (out / name).read_bytes() == (Path(second.path) / name).read_bytes()


def test_force_with_another_file_type_leaves_no_old_data_file(labeled, tmp_path):  # noqa: F811
    project, _ = labeled
    out = tmp_path / "data"
    _export(project, out, "--file-type", "parquet", "--test-size", "0.2")
    assert {"train.parquet", "test.parquet"} <= _names(out)
    _export(project, out, "--file-type", "jsonl", "--test-size", "0.2", "--force")
    assert _names(out) == {"train.jsonl", "test.jsonl", "manifest.json", "README.md"}
