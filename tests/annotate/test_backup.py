"""Dump a project and restore it: the same labels, guidelines and provenance come back."""

from __future__ import annotations

import gzip
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotate.errors import Conflict, InvalidInput
from annotate.models import Annotation, Guideline, Project, Task
from annotate.services.backup import project_dump, project_restore
from annotate.services.guidelines import guideline_acknowledge, guideline_publish
from annotate.services.leasing import annotation_submit, assignment_skip, task_claim_next
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


def _canonical(project):
    """Everything that matters, with ids replaced by content."""
    rows = []
    for a in Annotation.objects.filter(task__project=project).select_related(
        "task__prompt", "labeler", "guideline"
    ):
        slots = [tc.candidate.text for tc in a.task.slots.select_related("candidate").order_by("slot")]
        texts = {tc.candidate_id: tc.candidate.text for tc in a.task.slots.select_related("candidate")}
        rows.append(
            (
                a.task.prompt.messages[0]["content"],
                tuple(slots),
                a.labeler.username,
                a.choice,
                a.strength,
                tuple(texts[c] for c in a.shown_order),
                tuple(sorted((d, texts[int(c)], s) for d, row in a.ratings.items() for c, s in row.items())),
                a.guideline.version if a.guideline else None,
                a.created_at.isoformat(),
            )
        )
    return sorted(rows, key=repr)


def test_dump_and_restore_round_trip(make_project, labeler_in, make_user):
    project = make_project(overlap=2, dimensions=["Helpfulness"])
    add_tasks(project, prompts=4)
    g = guideline_publish(project=project, actor=make_user("boss"), body="Be <b>kind</b>.")
    labelers = [labeler_in(project, f"lab{i}") for i in range(2)]
    for user in labelers:
        guideline_acknowledge(guideline=g, user=user)
        for n in range(3):
            lease = task_claim_next(project=project, labeler=user)
            if n == 2:
                assignment_skip(assignment_id=lease.pk, labeler=user, reason="unsure")
                continue
            c0, c1 = lease.shown_order
            annotation_submit(
                assignment_id=lease.pk, labeler=user, choice="left", strength=3,
                ratings={"helpfulness": {str(c0): 5, str(c1): 2}},
            )  # fmt: skip
    before = _canonical(project)
    buf = io.BytesIO()
    counts = project_dump(project=project, out=buf)
    assert counts["annotation"] == 4 and counts["guideline"] == 1

    with pytest.raises(Conflict):
        project_restore(stream=io.BytesIO(buf.getvalue()))
    restored, _ = project_restore(stream=io.BytesIO(buf.getvalue()), slug="restored")
    assert restored.pk != project.pk
    assert _canonical(restored) == before
    assert Guideline.objects.get(project=restored).body == "Be <b>kind</b>."
    # live leases are not restored; the four submissions are
    assert sum(Task.objects.filter(project=restored).values_list("claims", flat=True)) == 4


def test_a_bad_dump_restores_nothing(make_project):
    project = make_project()
    add_tasks(project, prompts=2)
    buf = io.BytesIO()
    project_dump(project=project, out=buf)
    lines = gzip.decompress(buf.getvalue()).splitlines()
    broken = gzip.compress(b"\n".join([*lines[:-1], b'{"type": "task", "data": {"id": 1}}']) + b"\n")
    n_projects = Project.objects.count()
    with pytest.raises(InvalidInput, match="line"):
        project_restore(stream=io.BytesIO(broken), slug="broken")
    assert Project.objects.count() == n_projects


def test_cli_dump_restore(make_project, tmp_path):
    project = make_project()
    add_tasks(project, prompts=3)
    path = tmp_path / "p.jsonl.gz"
    call_command("project_backup", "dump", project.slug, str(path))
    call_command("project_backup", "restore", str(path), "--slug", "copy")
    assert Task.objects.filter(project__slug="copy").count() == 3
    with pytest.raises(CommandError, match="already exists"):
        call_command("project_backup", "restore", str(path), "--slug", "copy")
