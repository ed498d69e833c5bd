"""The audit log records who changed guidelines, membership, project settings, exports and runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from annotate.models import AuditEvent, Membership
from annotate.services.manage import (
    guideline_publish_by,
    member_add,
    member_deactivate,
    project_settings_change,
)
from tests.conftest import add_tasks
from training.services.exports import export_create
from training.services.runs import run_cancel, run_create

pytestmark = pytest.mark.django_db


def test_every_change_leaves_an_event_with_its_actor(make_project, make_user, labeler_in):
    project = make_project()
    add_tasks(project, prompts=2)
    manager = labeler_in(project, "boss", role="manager")
    researcher = labeler_in(project, "sci", role="researcher")

    guideline_publish_by(project=project, actor=manager, body="# Rules", change_note="v1")
    member_add(project=project, actor=manager, username="newbie", role="labeler")
    newbie = Membership.objects.get(project=project, user__username="newbie")
    member_deactivate(project=project, actor=manager, membership=newbie)
    project_settings_change(project=project, actor=manager, values={"overlap": 2})
    export_create(project=project, format="trl", created_by=researcher, enqueue=False)
    data = Path(settings.PREFHUB_DATA_DIR) / "datasets" / "audit-test.jsonl"  # a shared datasets folder
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    run = run_create(
        project=project,
        kind="reward",
        base_model="tiny",
        dataset_path=str(data),
        created_by=researcher,
        enqueue=False,
    )
    run_cancel(run=run, cancelled_by=researcher)

    events = list(
        AuditEvent.objects.filter(project=project).order_by("id").values_list("action", "actor__username")
    )
    assert events == [
        ("guideline.publish", "boss"),
        ("membership.add", "boss"),
        ("membership.deactivate", "boss"),
        ("project.settings", "boss"),
        ("export.create", "sci"),
        ("training.run_create", "sci"),
        ("training.run_cancel", "sci"),
    ]
    settings_event = AuditEvent.objects.get(project=project, action="project.settings")
    assert "overlap" in str(settings_event.details)
