"""``train --export`` naming an export that failed.

Before: "--export: That export is not finished yet.", as for a queued or running one, so the user
waited for an export that would never finish.
Now: "--export: That export failed; it has no files to train on: export again." A queued or
running export is still "not finished yet". Nothing is trained.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from training.models import Export, ExportState
from training.services.exports import export_create


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (ExportState.FAILED, r"That export failed; it has no files to train on: export again\."),
        (ExportState.QUEUED, r"That export is not finished yet\."),
        (ExportState.RUNNING, r"That export is not finished yet\."),
    ],
)
def test_an_unfinished_export_says_why(make_project, tmp_path, no_training, state, message):
    project = make_project()
    export = export_create(project=project, format="trl", enqueue=False)
    Export.objects.filter(pk=export.pk).update(state=state)
    with pytest.raises(CommandError, match=rf"^--export: {message}$"):
        call_command(
            "train", "reward", "--export", f"{project.slug}/v{export.version}", "--base-model", "tiny",
            "--out", str(tmp_path / "out"),
        )  # fmt: skip
    assert not (tmp_path / "out").exists()
