"""Audit events are append-only (issue 12): Django admin cannot add, change or delete them, the model
refuses updates and deletes, and on PostgreSQL a trigger refuses UPDATE/DELETE on the table (only
the ON DELETE SET NULL of a deleted project or user gets through)."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import Client

from annotate.models import AuditEvent, AuditEventImmutable
from core.audit import audit_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def event(make_project, labeler_in):
    project = make_project()
    actor = labeler_in(project, "boss", role="manager")
    return audit_record(actor=actor, project=project, action="guideline.publish", details={"v": 1})


def test_admin_cannot_forge_change_or_delete_audit_events(event, make_user):
    admin = make_user("root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    base = "/admin/annotate/auditevent/"
    assert client.get(base).status_code == 200  # reading stays possible
    forged = {
        "project": event.project_id,
        "actor": event.actor_id,
        "action": "membership.add",
        "target_type": "",
        "target_id": "",
        "details": "{}",
    }
    assert client.get(f"{base}add/").status_code == 403
    assert client.post(f"{base}add/", forged).status_code == 403
    assert client.post(f"{base}{event.pk}/change/", forged).status_code == 403
    assert client.post(f"{base}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    client.post(base, {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"})
    # project.create comes from making the test project; the admin added nothing.
    assert list(AuditEvent.objects.exclude(action="project.create").values_list("action", flat=True)) == [
        "guideline.publish"
    ]


def test_the_model_refuses_updates_and_deletes(event):
    event.action = "membership.add"
    with pytest.raises(AuditEventImmutable):
        event.save()
    with pytest.raises(AuditEventImmutable):
        event.delete()
    with pytest.raises(AuditEventImmutable):
        AuditEvent.objects.filter(pk=event.pk).update(action="membership.add")
    with pytest.raises(AuditEventImmutable):
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).action == "guideline.publish"


@pytest.mark.postgres
def test_postgres_trigger_refuses_update_and_delete(event):
    if connection.vendor != "postgresql":
        pytest.skip("the trigger is PostgreSQL's")
    table = AuditEvent._meta.db_table
    for sql in (
        f"UPDATE {table} SET action = 'membership.add' WHERE id = %s",
        f"UPDATE {table} SET actor_id = NULL, details = '{{}}' WHERE id = %s",
        f"DELETE FROM {table} WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cur,
        ):
            cur.execute(sql, [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).action == "guideline.publish"


def test_deleting_the_project_or_the_actor_keeps_the_event(event):
    project, actor = event.project, event.actor
    actor.delete()
    project.delete()
    kept = AuditEvent.objects.get(pk=event.pk)
    assert (kept.project_id, kept.actor_id, kept.action) == (None, None, "guideline.publish")
