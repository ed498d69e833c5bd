"""Guideline versions: publish (immutable, numbered per project) and acknowledge."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotate.errors import Conflict, InvalidInput, NotFound
from annotate.models import Guideline, GuidelineAck, Project
from annotate.validation import is_blank
from core.audit import audit_record

MAX_GUIDELINE_CHARS = 200_000


class GuidelineNotCurrent(Conflict):
    """The labeler acknowledged a version that is no longer the current one (``details`` names it)."""

    code = "guideline_not_current"


def plain_newlines(text: str) -> str:
    """Line ends as stored: a browser's CRLF (and a lone CR) become newlines."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


@transaction.atomic
def guideline_publish(
    *, project: Project, actor: AbstractBaseUser | None, body: str, change_note: str = ""
) -> Guideline:
    """Publish a new version (``actor`` is its author); the newest version is the current one and
    labelers must acknowledge it before their next submit. A body identical to the current
    version's is refused. Line ends are stored as plain newlines whichever way the text came (a
    browser's CRLF, an API client's), and compared so. Locks the project row so two managers
    publishing at once get consecutive version numbers; audited in the same transaction."""
    body = plain_newlines(body or "").strip()
    if is_blank(body):  # nothing a reader could see: zero-width characters only, too
        raise InvalidInput("Guidelines cannot be empty.", field="body")
    if len(body) > MAX_GUIDELINE_CHARS:
        raise InvalidInput(f"Guidelines are limited to {MAX_GUIDELINE_CHARS} characters.", field="body")
    change_note = (change_note or "").strip()
    if len(change_note) > 300:
        raise InvalidInput("Keep the change note under 300 characters.", field="change_note")
    Project.objects.select_for_update().filter(pk=project.pk).first()
    current = Guideline.objects.filter(project=project).order_by("-version").only("version", "body").first()
    if current is not None and plain_newlines(current.body).strip() == body:
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


@transaction.atomic
def guideline_acknowledge(*, guideline: Guideline, user: AbstractBaseUser) -> GuidelineAck:
    """Record that ``user`` read ``guideline``, which must be its project's current version: an
    older one is ``GuidelineNotCurrent`` (409, naming the current version) and is never recorded.
    Locks the project row, as ``guideline_publish`` does, so a version published meanwhile cannot
    come between the check and the record. Acknowledging twice keeps one row."""
    Project.objects.select_for_update().filter(pk=guideline.project_id).first()
    current = (
        Guideline.objects.filter(project_id=guideline.project_id).order_by("-version").only("version").first()
    )
    if current.pk != guideline.pk:  # the guideline is one of the project's: there is a current one
        raise GuidelineNotCurrent(
            f"You acknowledged version {guideline.version}, but version {current.version} is the "
            f"current one: read version {current.version} and acknowledge it.",
            details={"current_version": current.version, "current_guideline_id": current.pk},
        )
    ack, _ = GuidelineAck.objects.get_or_create(guideline=guideline, user=user)
    return ack


def guideline_acknowledge_read(
    *, project: Project, user: AbstractBaseUser, version: int | None = None, guideline_id: int | None = None
) -> Guideline:
    """Acknowledge the version the labeler says they read (``version`` or ``guideline_id``, or both
    naming the same one); neither: the current version (what clients sent before they could name
    it). Only the current version can be acknowledged (``guideline_acknowledge``): an older one is
    ``GuidelineNotCurrent`` (409, naming the current version), a version or id this project does
    not have is ``NotFound``, two names of different versions are ``InvalidInput``. Returns the
    acknowledged version."""
    named = None
    if guideline_id is not None:
        named = Guideline.objects.filter(project=project, pk=guideline_id).first()
        if named is None:
            raise NotFound(f"This project has no guideline with id {guideline_id}.", field="guideline_id")
    if version is not None:
        if named is not None and named.version != version:
            raise InvalidInput(
                f"guideline_id {guideline_id} is version {named.version}, not version {version}; "
                "send one of them.",
                field="version",
            )
        if named is None:
            named = Guideline.objects.filter(project=project, version=version).first()
            if named is None:
                raise NotFound(f"This project has no guideline version {version}.", field="version")
    if named is None:
        named = Guideline.objects.filter(project=project).order_by("-version").first()
        if named is None:
            raise NotFound("This project has no guidelines yet.")
    guideline_acknowledge(guideline=named, user=user)
    return named
