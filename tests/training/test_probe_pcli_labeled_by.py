"""``export_preferences --labeled-by`` with a format that has no labeled_by column.

Before: ``--labeled-by`` ("Add labeled_by (human, judge or mixed) to trl rows.") was accepted with
``--format hh_rlhf``, ``openai``, ``trl_unpaired`` or ``raw``, recorded as ``labeled_by: true`` in the
export's options and manifest, and the files had no such column: the researcher asked for who
labeled each row and silently got nothing (``--soft-labels`` is refused the same way already).
Now: it is a one-line CommandError naming ``--labeled-by`` and the formats that have the column;
no export is recorded and ``--out`` is not made. With a trl format the column is still written.
"""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from training.models import Export


@pytest.mark.parametrize("fmt", ["hh_rlhf", "openai", "trl_unpaired", "raw"])
def test_labeled_by_with_a_format_without_the_column_is_refused(make_project, tmp_path, fmt):
    project = make_project()
    out = tmp_path / "out"
    with pytest.raises(CommandError, match=r"^--labeled-by: .*only trl, trl_conversational have\.$"):
        call_command(
            "export_preferences", "--project", project.slug, "--format", fmt, "--out", str(out),
            "--labeled-by", "--aggregate", "none", verbosity=0,
        )  # fmt: skip
    assert not Export.objects.exists()
    assert not out.exists()


@pytest.mark.parametrize("fmt", ["trl", "trl_conversational"])
def test_labeled_by_with_a_trl_format_is_kept(make_project, tmp_path, fmt):
    project = make_project()
    call_command(
        "export_preferences", "--project", project.slug, "--format", fmt, "--out", str(tmp_path / "o"),
        "--labeled-by", verbosity=0, stdout=open("/dev/null", "w"),  # noqa: SIM115
    )  # fmt: skip
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert Export.objects.get().options["labeled_by"] is True
    assert manifest["options"]["labeled_by"] is True
