"""The audit log records who changed guidelines, membership, project settings, imports, exports,
runs and tokens: written by the service that makes the change, in the same transaction."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction

from annotate.models import AuditEvent, Guideline, Membership
from annotate.services import manage
from annotate.services.guidelines import guideline_publish
from annotate.services.imports import ImportFailed, prompts_import
from annotate.services.manage import member_add, member_deactivate, project_settings_change
from tests.conftest import add_tasks, bearer
from training.services.exports import export_create
from training.services.runs import run_cancel, run_create

pytestmark = pytest.mark.django_db


def test_every_change_leaves_an_event_with_its_actor(make_project, make_user, labeler_in):
    project = make_project()
    add_tasks(project, prompts=2)
    manager = labeler_in(project, "boss", role="manager")
    researcher = labeler_in(project, "sci", role="researcher")

    guideline_publish(project=project, actor=manager, body="# Rules", change_note="v1")
    member_add(project=project, actor=manager, username="newbie", role="labeler")
    newbie = Membership.objects.get(project=project, user__username="newbie")
    member_deactivate(project=project, actor=manager, membership=newbie)
    project_settings_change(project=project, actor=manager, values={"overlap": 2})
    export_create(project=project, format="trl", actor=researcher, enqueue=False)
    data = Path(settings.PREFHUB_DATA_DIR) / "datasets" / "audit-test.jsonl"  # a shared datasets folder
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    run = run_create(
        project=project,
        kind="reward",
        base_model="tiny",
        dataset_path=str(data),
        actor=researcher,
        enqueue=False,
    )
    run_cancel(run=run, actor=researcher)

    events = list(
        AuditEvent.objects.filter(project=project).order_by("id").values_list("action", "actor__username")
    )
    assert events == [
        ("project.create", None),  # made by the fixture, no actor
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


def test_the_import_api_writes_an_audit_event(make_project, labeler_in):
    """It wrote none: only the page's wrapper audited imports."""
    project = make_project()
    manager = labeler_in(project, "boss", role="manager")
    client = bearer(manager, name="cli")
    upload = io.BytesIO(b'{"id": "n1", "prompt": "Hello?", "candidates": ["Hi", "Hey"]}\n')
    upload.name = "prompts.jsonl"
    resp = client.post(f"/api/v1/projects/{project.slug}/imports/", {"file": upload}, format="multipart")
    assert resp.status_code == 201, resp.content
    event = AuditEvent.objects.get(project=project, action="prompts.import")
    assert event.actor == manager
    assert event.details["filename"] == "prompts.jsonl" and event.details["prompts"] == 1


def test_a_failed_import_leaves_no_event(make_project, make_user):
    project = make_project()
    with pytest.raises(ImportFailed):
        prompts_import(project=project, stream=io.BytesIO(b"not json\n"), actor=make_user(), filename="x")
    assert not AuditEvent.objects.filter(action="prompts.import").exists()


def test_a_rolled_back_change_leaves_no_event(make_project, make_user):
    project = make_project()
    with pytest.raises(RuntimeError), transaction.atomic():
        guideline_publish(project=project, actor=make_user(), body="# Rules")
        assert AuditEvent.objects.filter(project=project, action="guideline.publish").exists()
        raise RuntimeError("the caller's transaction fails after the publish")
    assert not Guideline.objects.filter(project=project).exists()
    assert not AuditEvent.objects.filter(project=project, action="guideline.publish").exists()


def test_services_audit_themselves_without_a_wrapper_layer():
    """One layer: the ``*_by`` wrappers that audited on the services' behalf are gone."""
    assert not [name for name in dir(manage) if name.endswith("_by")]
