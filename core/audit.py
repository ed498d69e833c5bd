"""The audit trail: who changed what in a project (guidelines, members, settings, imports, exports,
jobs, runs, tokens).

Services take the keyword ``actor`` (the user acting, or None for the system and the command line)
and call ``audit_record`` themselves, inside the transaction of the change they record, so the
trail never claims a change that was rolled back, nor misses one. Nothing else writes events. A row
that records its author (``core.models.Authored``: projects, endpoints, judges, jobs, exports, runs)
is made with ``audit_create``, which credits the same actor in the row and in the event.

One more writer, for project backups only: ``audit_log_copy`` puts a dumped project's log into the
project a restore is creating, each event with its own actor, time and details. It only inserts
(the log stays append-only), and only into a project whose log is still empty, before the restore
records itself (``project.restore``): no event can be back-dated into a project's log afterwards."""

from __future__ import annotations

from typing import TypeVar

from django.contrib.auth.models import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from annotate.models import AuditEvent, AuditEventImmutable, Project
from core.models import Authored

A = TypeVar("A", bound=Authored)


def _jsonable(value: object) -> object:
    """Details are stored as JSON: round-trip through Django's encoder (dates, decimals, UUIDs)."""
    import json

    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def audit_actor(actor: AbstractBaseUser | None) -> AbstractBaseUser | None:
    """The user to credit with a change: None for the system, the command line or anonymous."""
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


def audit_record(
    *,
    actor: AbstractBaseUser | None,
    project: Project | None,
    action: str,
    target: models.Model | None = None,
    details: dict | None = None,
) -> AuditEvent:
    """Write one audit event. ``action`` is dotted (``guideline.publish``, ``membership.add``...);
    ``target`` is the row acted on (its model label and primary key are kept, not a foreign key,
    so the event outlives it). Call it inside the transaction of the change it records."""
    return AuditEvent.objects.create(
        project=project,
        actor=audit_actor(actor),
        action=action[:64],
        target_type=target._meta.label_lower[:64] if target is not None else "",
        target_id=str(target.pk)[:64] if target is not None else "",
        details=_jsonable(details or {}),
    )


def audit_create(
    model: type[A], /, *, actor: AbstractBaseUser | None, action: str, details: dict | None = None, **fields
) -> A:
    """Create a row of an authored model (``created_by`` is ``actor``) and the audit event of its
    creation, credited to the same actor, in the caller's transaction. The event's project is the
    row's own project (or the row, for a project)."""
    row = model.objects.create(created_by=audit_actor(actor), **fields)  # fields may have a "model"
    project = row if isinstance(row, Project) else row.project
    audit_record(actor=actor, project=project, action=action, target=row, details=details)
    return row


def audit_log_copy(*, project: Project, events: list[AuditEvent], batch_size: int = 2000) -> int:
    """Insert ``events`` (unsaved, from a project dump, each with its ``created_at``) as the log of
    ``project``, in chunks, in the caller's transaction; returns how many. For ``project_restore``
    only, before it writes its own event: refused (``AuditEventImmutable``) when the project's log
    is not empty, so a log is copied once, into a new project, and never added to with past times.

    Each row is inserted as it is (``raw``, as Django's ``loaddata`` saves fixtures), so its time is
    the event's and not the time of the copy; nothing is updated afterwards."""
    if AuditEvent.objects.filter(project=project).exists():
        raise AuditEventImmutable("Audit events are append-only: a log is copied only into an empty one.")
    fields = [f for f in AuditEvent._meta.local_concrete_fields if not f.primary_key]
    for start in range(0, len(events), batch_size):
        batch = events[start : start + batch_size]
        for event in batch:
            if event.pk is not None or event.created_at is None:
                raise ValueError("an audit event to copy is new and has its time")
            event.project = project
            event.details = _jsonable(event.details or {})
        AuditEvent.objects.all()._insert(batch, fields=fields, raw=True)
    return len(events)
