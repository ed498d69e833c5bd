"""Pages: the home page, the labeler's workspace and the guidelines as labelers read them.

Views parse input, call one service or selector, and render. The labeling workspace is one page
that talks JSON to the endpoints below (claim next, submit, skip, undo, acknowledge guidelines).

Blind labeling: nothing a labeler's page receives names a model, a candidate id or anyone else's
work. Responses are addressed by opaque per-lease handles (their display position); a submission
is validated and mapped back to candidate ids by ``annotate.labeling_protocol``, the same protocol
the DRF labeling API speaks.
"""

from __future__ import annotations

import json
import re
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.text import Truncator
from django.views.decorators.http import require_GET, require_POST

from annotate import selectors
from annotate.errors import Forbidden, InvalidInput, LeaseExpired, LeaseNotLive, NotFound, ServiceError
from annotate.judges.selectors import pre_annotation_for_lease
from annotate.labeling_protocol import (
    SkipSerializer,
    SubmissionSerializer,
    lease_payload,
    submission_for,
    validated,
)
from annotate.letters import response_letter
from annotate.models import Assignment, Guideline, Project, Role, TaskKind
from annotate.rendering import render_markdown
from annotate.services.guidelines import GuidelineNotCurrent, guideline_acknowledge_read
from annotate.services.leasing import (
    MAX_LIVE_LEASES_PER_LABELER,
    LeaseView,
    annotation_submit,
    annotation_undo,
    assignment_renew,
    assignment_skip,
    task_claim_lease,
)
from annotate.throttles import page_rate_limit
from annotate.validation import UnsafeJSON, is_blank, json_loads_safe
from core.access import (
    ProjectAccess,
    assignment_access,
    nav_flags,
    project_page,
    roles_by_project,
    visible_projects,
)

ROLE_LABELS = {"user": "User", "assistant": "Assistant", "system": "System"}
# The reasons offered in the skip dialog (the labeler may also write their own).
SKIP_REASONS = (
    "I don't have the expertise to judge this",
    "The prompt or a response is broken or unreadable",
    "I'm not comfortable with this content",
)
MAX_JSON_BODY = 256 * 1024


# --- helpers -------------------------------------------------------------------------------------


def _json_error(exc: ServiceError) -> JsonResponse:
    return JsonResponse(exc.as_dict(), status=exc.status_code)


def json_endpoint(view):
    """Service errors become ``{"error", "detail", "field"}`` with their HTTP status."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except ServiceError as exc:
            return _json_error(exc)

    return wrapper


def _json_body(request: HttpRequest) -> dict:
    if len(request.body) > MAX_JSON_BODY:
        raise InvalidInput("That request is too large.")
    if not request.body:
        return {}
    try:
        body = json_loads_safe(request.body)
    except UnsafeJSON as exc:  # parsed, but too deep or holding text that cannot be stored
        raise InvalidInput(f"The request was refused: {exc}.") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidInput("The request was not valid JSON.") from None
    if not isinstance(body, dict):
        raise InvalidInput("The request must be a JSON object.")
    return body


def _optional_int(value: object, field: str) -> int | None:
    if value in (None, ""):
        return None
    # True is not 1, and 1.7 is not 1 (int() would cut it): a number with a fraction is refused
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise InvalidInput(f"{field} must be a whole number.", field=field)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{field} must be a whole number.", field=field) from None


def _progress(project: Project, user) -> dict:
    return selectors.labeler_progress_bar(project=project, user=user)


# --- home ----------------------------------------------------------------------------------------


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    roles_by = roles_by_project(request.user)
    cards = []
    for project in visible_projects(request.user):
        roles = roles_by.get(project.pk, set())
        is_labeler = Role.LABELER in roles
        cards.append(
            {
                "project": project,
                "active_tab": "",
                **nav_flags(roles),
                "roles": sorted(Role(r).label for r in roles),
                "progress": _progress(project, request.user) if is_labeler else None,
            }
        )
    return render(request, "annotate/home.html", {"cards": cards})


# --- the labeling workspace -----------------------------------------------------------------------


_MARKDOWN_NOISE = re.compile(r"```[^\n]*|[`*_>#|~]+|!?\[([^\]]*)\]\([^)]*\)")


def _snippet(text: str) -> str:
    """The first words of a response as plain text, for the ranking list."""
    plain = _MARKDOWN_NOISE.sub(lambda m: m.group(1) or " ", text)
    return Truncator(" ".join(plain.split())).chars(90) or "(empty response)"


def _task_context(project: Project, lease: dict) -> dict:
    """The task as the page renders it, from the labeling protocol's lease payload (the same
    ``lease_payload`` the DRF API answers): responses by display position, Markdown rendered."""
    responses = []
    for candidate in lease["candidates"]:
        position, text = candidate["handle"], candidate["text"]
        if project.kind == TaskKind.PAIRWISE:
            name, key = f"Response {position + 1}", str(position + 1)
        else:
            name, key = f"Response {response_letter(position)}", response_letter(position)
        responses.append(
            {
                "position": position,
                "name": name,
                "key": key,
                "html": render_markdown(text),
                "snippet": _snippet(text),
                "empty": is_blank(text),
            }
        )
    turns = [
        {
            "role": str(m.get("role", "user")),
            "label": ROLE_LABELS.get(str(m.get("role")), "Message"),
            "html": render_markdown(str(m.get("content", ""))),
        }
        for m in lease["messages"]
        if isinstance(m, dict)
    ]
    return {
        "lease": lease,
        "project": project,
        "suggestion": pre_annotation_for_lease(
            project=project, task_id=lease["task_id"], assignment_id=lease["assignment_id"]
        ),
        "turns": turns,
        "responses": responses,
        "dimensions": list(project.dimensions.all()),
        "scale": list(range(1, project.rating_scale_max + 1)),
        "is_pairwise": project.kind == TaskKind.PAIRWISE,
    }


def _render_task(project: Project, lease: dict) -> str:
    return render_to_string("annotate/_task.html", _task_context(project, lease))


def _task_payload(project: Project, lease: LeaseView) -> dict:
    payload = lease_payload(lease)
    return {
        "state": "task",
        "assignment_id": payload["assignment_id"],
        "expires_at": payload["expires_at"].isoformat(),
        "html": _render_task(project, payload),
        "guideline_pending": payload["guideline_to_acknowledge"] is not None,
    }


def _label_urls(project: Project) -> dict:
    slug = project.slug
    return {
        "next": reverse("annotate:label_next", args=[slug]),
        "submit": reverse("annotate:label_submit", args=[slug, 0]),
        "skip": reverse("annotate:label_skip", args=[slug, 0]),
        "undo": reverse("annotate:label_undo", args=[slug, 0]),
        "renew": reverse("annotate:label_renew", args=[slug, 0]),
        "guideline": reverse("annotate:guideline_current", args=[slug]),
        "ack": reverse("annotate:guideline_ack", args=[slug]),
    }


@project_page("label")
@require_GET
def label(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    project = access.project
    nav = access.nav("label")
    pending = selectors.guideline_pending_ack(project=project, user=request.user)
    if pending is not None:
        return _guideline_ack_page(request, access, pending)
    try:
        lease = task_claim_lease(project=project, labeler=request.user, roles=access.roles)
    except Forbidden as exc:
        raise PermissionDenied(exc.message) from None
    guideline = selectors.guideline_current(project=project)
    context = {
        **nav,
        "task_html": _render_task(project, lease_payload(lease)) if lease else None,
        "progress": _progress(project, request.user),
        "skip_reasons": SKIP_REASONS,
        "guideline": guideline,
        "guideline_html": render_markdown(guideline.body) if guideline else "",
        "is_pairwise": project.kind == TaskKind.PAIRWISE,
        "label_config": {
            "urls": _label_urls(project),
            "csrf": get_token(request),
            "allowTie": project.allow_tie,
            "allowBothBad": project.allow_both_bad,
            "leaseTtlSeconds": project.lease_ttl_seconds,
        },
    }
    return render(request, "annotate/label.html", context)


@project_page("label", json=True)
@require_POST
@json_endpoint
def label_next(request: HttpRequest, access: ProjectAccess) -> JsonResponse:
    """Lease the next task (the page's prefetch). ``exclude``: the leases the page already holds."""
    project = access.project
    body = _json_body(request)
    exclude = body.get("exclude") or []
    if not isinstance(exclude, list):
        raise InvalidInput("exclude must be a list of assignment ids.", field="exclude")
    exclude_ids = [_optional_int(x, "exclude") for x in exclude]
    lease = task_claim_lease(
        project=project,
        labeler=request.user,
        exclude_assignment_ids=[x for x in exclude_ids if x],
        roles=access.roles,
    )
    if lease is None:
        busy = (
            selectors.labeler_live_lease_count(project=project, user=request.user)
            >= MAX_LIVE_LEASES_PER_LABELER
        )
        return JsonResponse(
            {
                "state": "busy" if busy else "done",
                "html": "" if busy else render_to_string("annotate/_done.html", {"project": project}),
                "progress": _progress(project, request.user),
            }
        )
    return JsonResponse(_task_payload(project, lease))


def lease_endpoint(*, rate_scope: str | None = None):
    """A labeler's JSON endpoint on one of their own leases (``assignment_id`` in the URL): the
    label capability, POST only, service errors as JSON, optionally the page rate limit; the view
    is called as ``view(request, access, assignment)`` with the lease checked to be the caller's. A
    lease no longer live (``LeaseNotLive``, ``LeaseExpired``) answers its error with ``progress``."""

    def decorator(view):
        @wraps(view)
        def wrapper(request: HttpRequest, access: ProjectAccess, assignment_id: int) -> JsonResponse:
            assignment = assignment_access(request.user, assignment_id, project=access.project)
            try:
                return view(request, access, assignment)
            except (LeaseNotLive, LeaseExpired) as exc:
                # The lease ended (submitted or skipped by a request whose answer was lost, or run
                # out): the page moves on, with the progress the server counted.
                return JsonResponse(
                    {**exc.as_dict(), "progress": _progress(access.project, request.user)},
                    status=exc.status_code,
                )

        if rate_scope is not None:
            wrapper = page_rate_limit(rate_scope, json=True)(wrapper)
        return project_page("label", json=True)(require_POST(json_endpoint(wrapper)))

    return decorator


@lease_endpoint(rate_scope="submit")
def label_submit(request: HttpRequest, access: ProjectAccess, assignment: Assignment) -> JsonResponse:
    project = access.project
    data = validated(SubmissionSerializer, _json_body(request))
    _annotation, created = annotation_submit(
        assignment_id=assignment.pk,
        labeler=request.user,
        roles=access.roles,
        pre_annotation_shown=True,
        **submission_for(assignment, data),
    )
    payload = {"ok": True, "created": created, "progress": _progress(project, request.user)}
    if not created:
        payload["message"] = (
            "This task had already been submitted (by an earlier try whose answer did not come back, "
            "or in another tab); that first answer was kept. Press Backspace to undo it and answer again."
        )
    return JsonResponse(payload)


@lease_endpoint()
def label_skip(request: HttpRequest, access: ProjectAccess, assignment: Assignment) -> JsonResponse:
    data = validated(SkipSerializer, _json_body(request))
    assignment_skip(assignment_id=assignment.pk, labeler=request.user, **data)
    return JsonResponse({"ok": True, "progress": _progress(access.project, request.user)})


@lease_endpoint()
def label_undo(request: HttpRequest, access: ProjectAccess, assignment: Assignment) -> JsonResponse:
    undone = annotation_undo(assignment_id=assignment.pk, labeler=request.user)
    return JsonResponse(
        {
            "ok": True,
            "expires_at": undone.assignment.expires_at.isoformat(),
            "released_assignment_ids": undone.released_assignment_ids,
            "progress": _progress(access.project, request.user),
        }
    )


@lease_endpoint()
def label_renew(request: HttpRequest, access: ProjectAccess, assignment: Assignment) -> JsonResponse:
    assignment = assignment_renew(assignment_id=assignment.pk, labeler=request.user)
    return JsonResponse({"ok": True, "expires_at": assignment.expires_at.isoformat()})


# --- guidelines (labeler side) ----------------------------------------------------------------------


@project_page("view")
@require_GET
def guidelines(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    project = access.project
    guideline = selectors.guideline_current(project=project)
    pending = (
        selectors.guideline_pending_ack(project=project, user=request.user) if access.can("label") else None
    )
    return render(
        request,
        "annotate/guidelines.html",
        {
            **access.nav("guidelines"),
            "guideline": guideline,
            "body_html": render_markdown(guideline.body) if guideline else "",
            "pending": pending,
        },
    )


@project_page("view", json=True)
@require_GET
@json_endpoint
def guideline_current(request: HttpRequest, access: ProjectAccess) -> JsonResponse:
    project = access.project
    guideline = selectors.guideline_current(project=project)
    if guideline is None:
        return JsonResponse({"guideline": None, "pending": False})
    pending = selectors.guideline_pending_ack(project=project, user=request.user) is not None
    return JsonResponse(
        {
            "pending": pending,
            "guideline": {
                "id": guideline.pk,
                "version": guideline.version,
                "change_note": guideline.change_note,
                "html": str(render_markdown(guideline.body)),
            },
        }
    )


def _guideline_ack_page(
    request: HttpRequest, access: ProjectAccess, guideline: Guideline, *, error: str = "", status: int = 200
) -> HttpResponse:
    """The page asking the labeler to read ``guideline`` and acknowledge it (``error``: why their
    last acknowledgement was refused)."""
    project = access.project
    return render(
        request,
        "annotate/guidelines_ack.html",
        {
            **access.nav("label"),
            "guideline": guideline,
            "body_html": render_markdown(guideline.body),
            "first_time": not selectors.guideline_ever_acknowledged(project=project, user=request.user),
            "error": error,
        },
        status=status,
    )


@project_page("label")
@require_POST
def guideline_ack(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    """Acknowledge the version the labeler was shown (a form post, or JSON from the workspace),
    named by its ``guideline_id``. A version that is no longer current (a manager published a newer
    one while the page was open) is refused and not recorded: JSON 409 ``guideline_not_current``,
    the form the acknowledgement page again with the current version to read (409)."""
    project = access.project
    wants_json = request.content_type == "application/json"
    try:
        raw_id = _json_body(request).get("guideline_id") if wants_json else request.POST.get("guideline_id")
        guideline_id = _optional_int(raw_id, "guideline_id")
        if guideline_id is None:
            raise InvalidInput("Say which guideline version you read (guideline_id).", field="guideline_id")
        guideline = guideline_acknowledge_read(project=project, user=request.user, guideline_id=guideline_id)
    except ServiceError as exc:
        if wants_json:
            return _json_error(exc)
        if isinstance(exc, NotFound):
            raise
        current = selectors.guideline_current(project=project)
        if isinstance(exc, GuidelineNotCurrent) and current is not None:
            return _guideline_ack_page(request, access, current, error=exc.message, status=exc.status_code)
        return HttpResponse(exc.message, status=exc.status_code)
    if wants_json:
        pending = selectors.guideline_pending_ack(project=project, user=request.user)
        return JsonResponse({"ok": True, "version": guideline.version, "pending": pending is not None})
    return redirect("annotate:label", slug=project.slug)
