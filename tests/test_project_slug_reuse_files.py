"""A project made with the slug of a deleted one never sees the deleted project's files.

The defect: the paths a user may name (``core.paths.allowed_roots``) are the project's folders
``exports/<slug>/`` and ``runs/<slug>/``, and deleting a project (the admin) removed its rows but
left those folders on disk. A new project given the same slug could then train on the deleted
project's labels (its export files) or start from its trained models, and its own first export
landed beside the old ``v1``. Now deleting a project removes its folders once the deletion commits,
and a new project whose folders are already there (a deletion whose clean-up did not finish, a
restored database) has them moved aside, out of every project's reach, before anyone can name them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from annotate.errors import InvalidInput
from annotate.models import Project
from core.paths import DATASET, user_path

pytestmark = pytest.mark.django_db


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.PREFHUB_DATA_DIR = str(tmp_path / "data")
    return Path(settings.PREFHUB_DATA_DIR)


def _labels(data: Path, slug: str) -> Path:
    path = data / "exports" / slug / "v1" / "train.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text('{"prompt": "secret", "chosen": "a", "rejected": "b"}\n')
    run = data / "runs" / slug / "run-1"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    return path


def test_deleting_a_project_removes_its_folders(make_project, data_dir, django_capture_on_commit_callbacks):
    project = make_project(name="Gone")
    labels = _labels(data_dir, project.slug)
    with django_capture_on_commit_callbacks(execute=True):
        Project.objects.filter(pk=project.pk).delete()
    assert not labels.exists()
    assert (
        not (data_dir / "exports" / project.slug).exists() and not (data_dir / "runs" / project.slug).exists()
    )


def test_a_new_project_with_a_deleted_ones_slug_cannot_name_its_files(make_project, data_dir):
    labels = _labels(data_dir, "reused")  # left by a deleted project "reused"
    project = make_project(name="Reused", slug="reused")
    with pytest.raises(InvalidInput):
        user_path(str(labels), project=project, kind=DATASET, field="dataset_path")
    moved = list((data_dir / "retired").glob("reused-*/exports/v1/train.jsonl"))
    assert len(moved) == 1 and "secret" in moved[0].read_text()  # kept for the administrator, out of reach
    assert not (data_dir / "exports" / "reused").exists() and not (data_dir / "runs" / "reused").exists()
