"""Guideline versions: publish (immutable, numbered per project) and acknowledge."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotate.errors import InvalidInput
from annotate.models import Guideline, GuidelineAck, Project
from core.audit import audit_record

MAX_GUIDELINE_CHARS = 200_000


@transaction.atomic
def guideline_publish(
    *, project: Project, actor: AbstractBaseUser | None, body: str, change_note: str = ""
) -> Guideline:
    """Publish a new version (``actor`` is its author); the newest version is the current one and
    labelers must acknowledge it before their next submit. A body identical to the current
    version's is refused. Locks the project row so two managers publishing at once get consecutive
    version numbers; audited in the same transaction."""
    body = (body or "").strip()
    if not body:
        raise InvalidInput("Guidelines cannot be empty.", field="body")
    if len(body) > MAX_GUIDELINE_CHARS:
        raise InvalidInput(f"Guidelines are limited to {MAX_GUIDELINE_CHARS} characters.", field="body")
    change_note = (change_note or "").strip()
    if len(change_note) > 300:
        raise InvalidInput("Keep the change note under 300 characters.", field="change_note")
    Project.objects.select_for_update().filter(pk=project.pk).first()
    current = Guideline.objects.filter(project=project).order_by("-version").only("version", "body").first()
    if current is not None and current.body.strip() == body:
        raise InvalidInput(
            "This is the same as the current version; change something before publishing.", field="body"
        )
    latest = current.version if current is not None else 0
    guideline = Guideline.objects.create(
        project=project, version=latest + 1, body=body, change_note=change_note, author=actor
    )
    audit_record(
        actor=actor,
        project=project,
        action="guideline.publish",
        target=guideline,
        details={"version": guideline.version, "change_note": change_note, "chars": len(body)},
    )
    return guideline


def guideline_acknowledge(*, guideline: Guideline, user: AbstractBaseUser) -> GuidelineAck:
    ack, _ = GuidelineAck.objects.get_or_create(guideline=guideline, user=user)
    return ack
