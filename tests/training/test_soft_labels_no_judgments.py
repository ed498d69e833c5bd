"""An export with soft_labels (or aggregate=weighted) of a project that has no judgment yet (no
labels, or only gold tasks left out) finishes like the same export without the option: no rows.

Before: the reliability model has nothing to fit there (fit_reliability gives None) and the compiler
refused to start without one, so the export failed with an internal ValueError ("aggregate=weighted
and soft_labels need a fitted reliability model"), and export_preferences crashed with a traceback."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from annotate.models import Annotation, Task
from tests.conftest import add_tasks
from training.models import Export, ExportState
from training.services.exports import export_create, export_run

pytestmark = pytest.mark.django_db

OPTIONS = [{"soft_labels": True}, {"aggregate": "weighted"}, {"soft_labels": True, "aggregate": "weighted"}]


def _export(project, options):
    export = export_create(project=project, format="trl", options=options, enqueue=False)
    return export_run(export_id=export.pk)


@pytest.mark.parametrize("options", OPTIONS, ids=["soft", "weighted", "both"])
def test_export_of_a_project_without_labels(make_project, options):
    project = make_project()
    add_tasks(project, prompts=3)
    plain = _export(project, {})
    export = _export(project, options)
    assert export.state == ExportState.DONE == plain.state, export.error
    assert export.row_count == 0 == plain.row_count


def test_export_whose_only_labels_are_left_out(make_project, labeler_in):
    project = make_project()
    add_tasks(project, prompts=2)
    labeler = labeler_in(project)
    Annotation.objects.bulk_create(
        [Annotation(task=t, labeler=labeler, choice="a") for t in Task.objects.filter(project=project)]
    )
    Task.objects.filter(project=project).update(is_gold=True)
    export = _export(project, {"soft_labels": True, "include_gold": False})
    assert export.state == ExportState.DONE, export.error
    assert export.row_count == 0


def test_export_preferences_command(make_project, tmp_path):
    project = make_project()
    add_tasks(project, prompts=2)
    call_command(
        "export_preferences", "--project", project.slug, "--format", "trl", "--soft-labels", "--out", str(tmp_path / "o"),
        verbosity=0,
    )  # fmt: skip
    assert Export.objects.get(project=project).state == ExportState.DONE
