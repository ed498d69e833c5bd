"""Service-layer errors. Each carries the HTTP status a view or API should answer with."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


class ServiceError(Exception):
    """A request the service refuses, with a message fit to show the user."""

    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, details: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def as_dict(self) -> dict:
        payload: dict = {"error": self.code, "detail": self.message}
        if self.field:
            payload["field"] = self.field
        if self.details is not None:
            payload["details"] = self.details
        return payload


class InvalidInput(ServiceError):
    status_code = 400
    code = "invalid"


class NotFound(ServiceError):
    status_code = 404
    code = "not_found"


class Forbidden(ServiceError):
    status_code = 403
    code = "forbidden"


class MembershipEnded(Forbidden):
    """The principal was a member of the project and every one of its memberships was deactivated:
    it already knows the project exists, so it is told why it is refused (not a 404)."""

    code = "membership_ended"


class OwnJudgment(Forbidden):
    """A manager reviews (accepts, rejects or restores) a judgment they made themselves."""

    code = "own_judgment"


class Conflict(ServiceError):
    status_code = 409
    code = "conflict"


class LeaseExpired(Conflict):
    code = "lease_expired"


class LeaseNotLive(Conflict):
    code = "lease_not_live"


class JudgmentReviewed(Conflict):
    """The labeler undoes a judgment a manager has already accepted or rejected."""

    code = "judgment_reviewed"


class GuidelineNotAcknowledged(Conflict):
    code = "guideline_not_acknowledged"


def found(obj: T | None, message: str) -> T:
    """``obj`` from a lookup that may have come back empty; when it did, ``NotFound(message)``: a
    404 from an API view (the exception handler) and from a page (``core.access.project_page``)."""
    if obj is None:
        raise NotFound(message)
    return obj
