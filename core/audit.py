"""The audit trail: who changed what in a project (guidelines, members, settings, imports, exports,
jobs, runs, tokens).

Services take the keyword ``actor`` (the user acting, or None for the system and the command line)
and call ``audit_record`` themselves, inside the transaction of the change they record, so the
trail never claims a change that was rolled back, nor misses one. Nothing else writes events. A row
that records its author (``core.models.Authored``: projects, endpoints, judges, jobs, exports, runs)
is made with ``audit_create``, which credits the same actor in the row and in the event."""

from __future__ import annotations

from typing import TypeVar

from django.contrib.auth.models import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from annotate.models import AuditEvent, Project
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
