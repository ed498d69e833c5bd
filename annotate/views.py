"""Pages: the labeler's workspace and the manager's project pages.

Views parse input, call one service or selector, and render. The labeling workspace is one page
that talks JSON to the endpoints below (claim next, submit, skip, undo, acknowledge guidelines);
the manager's pages are plain forms (post, redirect, get).

Blind labeling: nothing a labeler's page receives names a model, a candidate id or anyone else's
work. Responses are addressed by their *display position* on this lease; positions are mapped back
to candidate ids here, through the lease's ``shown_order``, before the service sees them.
"""

from __future__ import annotations

import difflib
import json
import re
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.text import Truncator
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotate import selectors
from annotate.errors import Forbidden, InvalidInput, NotFound, ServiceError
from annotate.forms import (
    DimensionFormSet,
    GuidelineForm,
    ImportForm,
    MemberAddForm,
    ProjectSettingsForm,
    dimension_rows,
)
from annotate.models import Assignment, Guideline, Membership, Project, Role, TaskKind
from annotate.permissions import CAPABILITIES, project_for_request
from annotate.rendering import render_markdown
from annotate.services.guidelines import guideline_acknowledge
from annotate.services.imports import ImportFailed
from annotate.services.leasing import (
    MAX_LIVE_LEASES_PER_LABELER,
    annotation_submit,
    annotation_undo,
    assignment_renew,
    assignment_skip,
    task_claim_next,
)
from annotate.services.manage import (
    guideline_publish_by,
    member_add,
    member_deactivate,
    project_settings_change,
    prompts_import_by,
)
from annotate.throttles import page_rate_limit
from annotate.uploads import human_bytes, import_size_limit_install, import_too_large_message
from annotate.validation import json_loads_safe

ROLE_LABELS = {"user": "User", "assistant": "Assistant", "system": "System"}
# The reasons offered in the skip dialog (the labeler may also write their own).
SKIP_REASONS = (
    "I don't have the expertise to judge this",
    "The prompt or a response is broken or unreadable",
    "I'm not comfortable with this content",
)
MAX_JSON_BODY = 256 * 1024


# --- helpers -------------------------------------------------------------------------------------


def _project_for(request: HttpRequest, slug: str, capability: str) -> tuple[Project, set[str]]:
    return project_for_request(request, slug, capability)


def _can(roles: set[str], capability: str) -> bool:
    return bool(roles & CAPABILITIES[capability])


def _project_nav(project: Project, roles: set[str], active: str) -> dict:
    return {
        "project": project,
        "active_tab": active,
        "can_label": _can(roles, "label"),
        "can_manage": _can(roles, "manage"),
        "can_reports": _can(roles, "view_reports"),
        "can_research": _can(roles, "research"),
    }


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
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidInput("The request was not valid JSON.") from None
    if not isinstance(body, dict):
        raise InvalidInput("The request must be a JSON object.")
    return body


def _optional_int(value: object, field: str) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool):
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
    projects = list(selectors.projects_for_user(user=request.user))
    roles_by_project = selectors.user_project_roles(user=request.user)
    cards = []
    for project in projects:
        roles = roles_by_project.get(project.pk, set())
        is_labeler = Role.LABELER in roles
        cards.append(
            {
                **_project_nav(project, roles, ""),
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


def _letter(position: int) -> str:
    """A, B, ... Z, AA, AB, ... (ranking responses are named by letter; digits are positions)."""
    name = ""
    position += 1
    while position:
        position, rest = divmod(position - 1, 26)
        name = chr(ord("A") + rest) + name
    return name


def _task_context(assignment_id: int) -> dict:
    assignment = selectors.assignment_with_task(assignment_id=assignment_id)
    task = assignment.task
    project = task.project
    candidates = selectors.assignment_candidates_in_display_order(assignment=assignment)
    responses = []
    for position, candidate in enumerate(candidates):
        if project.kind == TaskKind.PAIRWISE:
            name, key = f"Response {position + 1}", str(position + 1)
        else:
            name, key = f"Response {_letter(position)}", _letter(position)
        responses.append(
            {
                "position": position,
                "name": name,
                "key": key,
                "html": render_markdown(candidate.text),
                "snippet": _snippet(candidate.text),
                "empty": not candidate.text.strip(),
            }
        )
    messages_ = task.prompt.messages if isinstance(task.prompt.messages, list) else []
    turns = [
        {
            "role": str(m.get("role", "user")),
            "label": ROLE_LABELS.get(str(m.get("role")), "Message"),
            "html": render_markdown(str(m.get("content", ""))),
        }
        for m in messages_
        if isinstance(m, dict)
    ]
    return {
        "assignment": assignment,
        "project": project,
        "turns": turns,
        "responses": responses,
        "dimensions": list(project.dimensions.all()),
        "scale": list(range(1, project.rating_scale_max + 1)),
        "is_pairwise": project.kind == TaskKind.PAIRWISE,
    }


def _render_task(assignment_id: int) -> str:
    return render_to_string("annotate/_task.html", _task_context(assignment_id))


def _task_payload(project: Project, user, assignment: Assignment) -> dict:
    return {
        "state": "task",
        "assignment_id": assignment.pk,
        "expires_at": assignment.expires_at.isoformat(),
        "html": _render_task(assignment.pk),
        "guideline_pending": selectors.guideline_pending_ack(project=project, user=user) is not None,
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


@login_required
@require_GET
def label(request: HttpRequest, slug: str) -> HttpResponse:
    project, roles = _project_for(request, slug, "label")
    nav = _project_nav(project, roles, "label")
    pending = selectors.guideline_pending_ack(project=project, user=request.user)
    if pending is not None:
        return render(
            request,
            "annotate/guidelines_ack.html",
            {
                **nav,
                "guideline": pending,
                "body_html": render_markdown(pending.body),
                "first_time": not selectors.guideline_ever_acknowledged(project=project, user=request.user),
            },
        )
    try:
        assignment = task_claim_next(project=project, labeler=request.user)
    except Forbidden as exc:
        raise PermissionDenied(exc.message) from None
    guideline = selectors.guideline_current(project=project)
    context = {
        **nav,
        "task_html": _render_task(assignment.pk) if assignment else None,
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
        },
    }
    return render(request, "annotate/label.html", context)


@login_required
@require_POST
@json_endpoint
def label_next(request: HttpRequest, slug: str) -> JsonResponse:
    """Lease the next task (the page's prefetch). ``exclude``: the leases the page already holds."""
    project, _ = _project_for(request, slug, "label")
    body = _json_body(request)
    exclude = body.get("exclude") or []
    if not isinstance(exclude, list) or len(exclude) > 8:
        raise InvalidInput("exclude must be a short list of assignment ids.")
    exclude_ids = [_optional_int(x, "exclude") for x in exclude]
    assignment = task_claim_next(
        project=project, labeler=request.user, exclude_assignment_ids=[x for x in exclude_ids if x]
    )
    if assignment is None:
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
    return JsonResponse(_task_payload(project, request.user, assignment))


def _own_assignment(project: Project, user, assignment_id: int) -> Assignment:
    assignment = Assignment.objects.filter(pk=assignment_id, labeler=user, task__project=project).first()
    if assignment is None:
        raise NotFound("That task is not one of yours.")
    return assignment


def _position_to_id(shown: list[int], value: object, field: str) -> int:
    pos = _optional_int(value, field)
    if pos is None or not 0 <= pos < len(shown):
        raise InvalidInput("That response is not part of this task.", field=field)
    return shown[pos]


def _submission(body: dict, assignment: Assignment) -> dict:
    """The page's JSON (display positions) -> annotation_submit's arguments (candidate ids)."""
    shown = list(assignment.shown_order)
    ranking = body.get("ranking")
    if ranking not in (None, []):
        if not isinstance(ranking, list):
            raise InvalidInput("ranking must be a list of groups of positions.", field="ranking")
        ranking = [
            [_position_to_id(shown, p, "ranking") for p in (group if isinstance(group, list) else [group])]
            for group in ranking
        ]
    ratings = body.get("ratings") or {}
    if not isinstance(ratings, dict):
        raise InvalidInput("ratings must map a dimension to {position: score}.", field="ratings")
    mapped_ratings: dict[str, dict[str, object]] = {}
    for key, per_position in ratings.items():
        if not isinstance(per_position, dict):
            raise InvalidInput("ratings must map a dimension to {position: score}.", field="ratings")
        mapped_ratings[str(key)] = {
            str(_position_to_id(shown, pos, "ratings")): _optional_int(score, "ratings")
            for pos, score in per_position.items()
            if score not in (None, "")
        }
    choice = body.get("choice") or None
    if choice is not None and not isinstance(choice, str):
        raise InvalidInput("choice must be left, right, tie or both_bad.", field="choice")
    return {
        "choice": choice,
        "ranking": ranking,
        "strength": _optional_int(body.get("strength"), "strength"),
        "ratings": mapped_ratings,
        "rationale": str(body.get("rationale") or ""),
        "flagged": bool(body.get("flagged")),
        "flag_reason": str(body.get("flag_reason") or ""),
        "time_spent_ms": _optional_int(body.get("time_spent_ms"), "time_spent_ms"),
    }


@login_required
@require_POST
@json_endpoint
@page_rate_limit("submit", json=True)
def label_submit(request: HttpRequest, slug: str, assignment_id: int) -> JsonResponse:
    project, _ = _project_for(request, slug, "label")
    assignment = _own_assignment(project, request.user, assignment_id)
    _annotation, created = annotation_submit(
        assignment_id=assignment.pk, labeler=request.user, **_submission(_json_body(request), assignment)
    )
    payload = {"ok": True, "created": created, "progress": _progress(project, request.user)}
    if not created:
        payload["message"] = (
            "This task had already been submitted (perhaps in another tab); the first answer was kept."
        )
    return JsonResponse(payload)


@login_required
@require_POST
@json_endpoint
def label_skip(request: HttpRequest, slug: str, assignment_id: int) -> JsonResponse:
    project, _ = _project_for(request, slug, "label")
    assignment = _own_assignment(project, request.user, assignment_id)
    body = _json_body(request)
    assignment_skip(assignment_id=assignment.pk, labeler=request.user, reason=str(body.get("reason") or ""))
    return JsonResponse({"ok": True, "progress": _progress(project, request.user)})


@login_required
@require_POST
@json_endpoint
def label_undo(request: HttpRequest, slug: str, assignment_id: int) -> JsonResponse:
    project, _ = _project_for(request, slug, "label")
    assignment = _own_assignment(project, request.user, assignment_id)
    assignment = annotation_undo(assignment_id=assignment.pk, labeler=request.user)
    return JsonResponse(
        {
            "ok": True,
            "expires_at": assignment.expires_at.isoformat(),
            "progress": _progress(project, request.user),
        }
    )


@login_required
@require_POST
@json_endpoint
def label_renew(request: HttpRequest, slug: str, assignment_id: int) -> JsonResponse:
    project, _ = _project_for(request, slug, "label")
    assignment = _own_assignment(project, request.user, assignment_id)
    assignment = assignment_renew(assignment_id=assignment.pk, labeler=request.user)
    return JsonResponse({"ok": True, "expires_at": assignment.expires_at.isoformat()})


# --- guidelines (labeler side) ----------------------------------------------------------------------


@login_required
@require_GET
def guidelines(request: HttpRequest, slug: str) -> HttpResponse:
    project, roles = _project_for(request, slug, "view")
    guideline = selectors.guideline_current(project=project)
    pending = (
        selectors.guideline_pending_ack(project=project, user=request.user) if _can(roles, "label") else None
    )
    return render(
        request,
        "annotate/guidelines.html",
        {
            **_project_nav(project, roles, "guidelines"),
            "guideline": guideline,
            "body_html": render_markdown(guideline.body) if guideline else "",
            "pending": pending,
        },
    )


@login_required
@require_GET
@json_endpoint
def guideline_current(request: HttpRequest, slug: str) -> JsonResponse:
    project, _ = _project_for(request, slug, "view")
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


@login_required
@require_POST
def guideline_ack(request: HttpRequest, slug: str) -> HttpResponse:
    """Acknowledge the version the labeler was shown (a form post, or JSON from the workspace)."""
    project, _ = _project_for(request, slug, "label")
    wants_json = request.content_type == "application/json"
    try:
        raw_id = _json_body(request).get("guideline_id") if wants_json else request.POST.get("guideline_id")
        guideline_id = _optional_int(raw_id, "guideline_id")
    except ServiceError as exc:
        return _json_error(exc) if wants_json else HttpResponse(exc.message, status=exc.status_code)
    guideline = get_object_or_404(Guideline, pk=guideline_id or 0, project=project)
    guideline_acknowledge(guideline=guideline, user=request.user)
    if wants_json:
        pending = selectors.guideline_pending_ack(project=project, user=request.user)
        return JsonResponse({"ok": True, "version": guideline.version, "pending": pending is not None})
    return redirect("annotate:label", slug=project.slug)


def _duration(ms: float | None) -> str:
    if ms is None:
        return "—"
    seconds = round(ms / 1000)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


# --- manager: progress -------------------------------------------------------------------------------


@login_required
@require_GET
def manage_progress(request: HttpRequest, slug: str) -> HttpResponse:
    project, roles = _project_for(request, slug, "manage")
    progress = selectors.project_progress(project=project)
    total = progress["total"] or 0
    guideline = selectors.guideline_current(project=project)
    labelers = selectors.labeler_throughput(project=project)
    for row in labelers:
        row["median_display"] = _duration(row["median_ms"])
    active_labelers = sum(1 for row in labelers if row["is_active"])
    return render(
        request,
        "annotate/manage/progress.html",
        {
            **_project_nav(project, roles, "progress"),
            "progress": progress,
            "percent_done": round(100 * progress["done"] / total) if total else 0,
            "labelers": labelers,
            "active_labelers": active_labelers,
            "guideline": guideline,
            "guideline_acks": len(selectors.guideline_ack_user_ids(guideline=guideline)),
        },
    )


# --- manager: settings -----------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def manage_settings(request: HttpRequest, slug: str) -> HttpResponse:
    project, roles = _project_for(request, slug, "manage")
    initial_dims = [
        {"label": d.label, "key": d.key, "description": d.description, "required": d.required}
        for d in project.dimensions.all()
    ]
    if request.method == "POST":
        form = ProjectSettingsForm(request.POST, project=project)
        formset = DimensionFormSet(request.POST, prefix="dim")
        if form.is_valid() and formset.is_valid():
            try:
                _project, changes = project_settings_change(
                    project=project,
                    actor=request.user,
                    values=form.settings_values(),
                    dimensions=dimension_rows(formset),
                )
            except ServiceError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                if changes:
                    messages.success(request, f"Settings saved ({', '.join(sorted(changes))} changed).")
                else:
                    messages.info(request, "Nothing changed.")
                return redirect("annotate:manage_settings", slug=project.slug)
    else:
        form = ProjectSettingsForm(project=project)
        formset = DimensionFormSet(initial=initial_dims, prefix="dim")
    return render(
        request,
        "annotate/manage/settings.html",
        {**_project_nav(project, roles, "settings"), "form": form, "formset": formset},
    )


# --- manager: guidelines ---------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def manage_guidelines(request: HttpRequest, slug: str) -> HttpResponse:
    project, roles = _project_for(request, slug, "manage")
    current = selectors.guideline_current(project=project)
    if request.method == "POST":
        form = GuidelineForm(request.POST)
        if form.is_valid():
            body = form.cleaned_data["body"]
            if current is not None and body.strip() == current.body.strip():
                form.add_error(
                    "body", "This is the same as the current version; change something before publishing."
                )
            else:
                try:
                    guideline = guideline_publish_by(
                        project=project,
                        actor=request.user,
                        body=body,
                        change_note=form.cleaned_data["change_note"],
                    )
                except ServiceError as exc:
                    form.add_error(exc.field if exc.field in form.fields else None, exc.message)
                else:
                    messages.success(
                        request,
                        f"Published version {guideline.version}. Labelers will be asked to acknowledge it before their next submission.",
                    )
                    return redirect("annotate:manage_guidelines", slug=project.slug)
    else:
        form = GuidelineForm(initial={"body": current.body if current else ""})
    preview_source = form["body"].value() or ""
    return render(
        request,
        "annotate/manage/guidelines.html",
        {
            **_project_nav(project, roles, "guidelines"),
            "form": form,
            "current": current,
            "versions": selectors.guideline_versions(project=project),
            "preview_html": render_markdown(preview_source),
            "labeler_count": selectors.active_labeler_count(project=project),
        },
    )


@login_required
@require_POST
def manage_guideline_preview(request: HttpRequest, slug: str) -> HttpResponse:
    """Server-side Markdown preview for the editor: sanitized HTML, the same as labelers will see."""
    _project_for(request, slug, "manage")
    body = request.POST.get("body", "")
    if len(body) > 200_000:
        return HttpResponse("The text is too long to preview.", status=400, content_type="text/plain")
    html = render_markdown(body) or '<p class="muted">Nothing to preview yet.</p>'
    return HttpResponse(html, content_type="text/html; charset=utf-8")


@login_required
@require_GET
def manage_guideline_version(request: HttpRequest, slug: str, version: int) -> HttpResponse:
    project, roles = _project_for(request, slug, "manage")
    guideline = selectors.guideline_get(project=project, version=version)
    if guideline is None:
        raise Http404("No such version.")
    return render(
        request,
        "annotate/manage/guideline_version.html",
        {
            **_project_nav(project, roles, "guidelines"),
            "guideline": guideline,
            "body_html": render_markdown(guideline.body),
        },
    )


def _diff_rows(old: str, new: str) -> list[dict]:
    """A unified diff as rows for the template (escaped there): kind is add, del, hunk or same."""
    rows = []
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=3):
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            rows.append({"kind": "hunk", "text": line})
        elif line.startswith("+"):
            rows.append({"kind": "add", "text": line[1:]})
        elif line.startswith("-"):
            rows.append({"kind": "del", "text": line[1:]})
        else:
            rows.append({"kind": "same", "text": line[1:]})
    return rows


@login_required
@require_GET
def manage_guideline_diff(request: HttpRequest, slug: str) -> HttpResponse:
    project, roles = _project_for(request, slug, "manage")
    versions = list(selectors.guideline_versions(project=project))
    if len(versions) < 2:
        messages.info(request, "There is only one version so far: nothing to compare.")
        return redirect("annotate:manage_guidelines", slug=project.slug)
    by_version = {g.version: g for g in versions}
    try:
        new_v = int(request.GET.get("to") or versions[0].version)
        old_v = int(request.GET.get("from") or (new_v - 1))
    except ValueError:
        raise Http404("No such version.") from None
    old, new = by_version.get(old_v), by_version.get(new_v)
    if old is None or new is None:
        raise Http404("No such version.")
    rows = _diff_rows(old.body, new.body)
    return render(
        request,
        "annotate/manage/guideline_diff.html",
        {
            **_project_nav(project, roles, "guidelines"),
            "old": old,
            "new": new,
            "rows": rows,
            "added": sum(1 for r in rows if r["kind"] == "add"),
            "removed": sum(1 for r in rows if r["kind"] == "del"),
            "versions": versions,
        },
    )


# --- manager: members ------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def manage_members(request: HttpRequest, slug: str) -> HttpResponse:
    project, roles = _project_for(request, slug, "manage")
    created = None
    if request.method == "POST":
        form = MemberAddForm(request.POST)
        if form.is_valid():
            try:
                membership, password = member_add(
                    project=project,
                    actor=request.user,
                    username=form.cleaned_data["username"],
                    email=form.cleaned_data["email"],
                    role=form.cleaned_data["role"],
                )
            except ServiceError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                if password is None:
                    messages.success(
                        request, f"{membership.user} is now a {membership.get_role_display().lower()} here."
                    )
                    return redirect("annotate:manage_members", slug=project.slug)
                # A new account: show its initial password once, in this response only (never in
                # a message, which would travel in a cookie or the session).
                created = {
                    "username": membership.user.get_username(),
                    "password": password,
                    "role": membership.get_role_display(),
                }
                form = MemberAddForm()
    else:
        form = MemberAddForm()
    memberships = list(selectors.memberships_for_project(project=project))
    guideline = selectors.guideline_current(project=project)
    acked = selectors.guideline_ack_user_ids(guideline=guideline)
    return render(
        request,
        "annotate/manage/members.html",
        {
            **_project_nav(project, roles, "members"),
            "form": form,
            "memberships": memberships,
            "created": created,
            "guideline": guideline,
            "acked": acked,
        },
        status=201 if created else 200,
    )


@login_required
@require_POST
def manage_member_deactivate(request: HttpRequest, slug: str, membership_id: int) -> HttpResponse:
    project, _ = _project_for(request, slug, "manage")
    membership = get_object_or_404(
        Membership.objects.select_related("user"), pk=membership_id, project=project
    )
    try:
        released = member_deactivate(project=project, actor=request.user, membership=membership)
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        extra = f" {released} task(s) they held went back to the pool." if released else ""
        messages.success(
            request, f"{membership.user} is no longer a {membership.get_role_display().lower()} here.{extra}"
        )
    return redirect("annotate:manage_members", slug=project.slug)


@login_required
@require_POST
def manage_member_reactivate(request: HttpRequest, slug: str, membership_id: int) -> HttpResponse:
    project, _ = _project_for(request, slug, "manage")
    membership = get_object_or_404(
        Membership.objects.select_related("user"), pk=membership_id, project=project
    )
    try:
        member_add(
            project=project, actor=request.user, username=membership.user.get_username(), role=membership.role
        )
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"{membership.user} is a {membership.get_role_display().lower()} here again."
        )
    return redirect("annotate:manage_members", slug=project.slug)


# --- manager: import -------------------------------------------------------------------------------


@csrf_exempt  # the CSRF check runs in _manage_import, after the size-limit handler is installed
@login_required
@require_http_methods(["GET", "POST"])
@page_rate_limit("import")
def manage_import(request: HttpRequest, slug: str) -> HttpResponse:
    if request.method == "POST":
        import_size_limit_install(request)
    return _manage_import(request, slug)


@csrf_protect
def _manage_import(request: HttpRequest, slug: str) -> HttpResponse:
    project, roles = _project_for(request, slug, "manage")
    max_bytes = ImportForm.max_bytes()
    too_large = import_too_large_message(max_bytes)
    report = None
    failed = False
    status = 200
    if request.method == "POST":
        form = ImportForm(request.POST, request.FILES)
        if getattr(request, "import_too_large", False):
            form.is_valid()
            form.errors.pop("file", None)  # "required": the upload was cut off, say why instead
            form.add_error("file", too_large)
            status = 413
        elif form.is_valid():
            upload = form.cleaned_data["file"]
            options = {"fmt": form.cleaned_data["format"], "skip_invalid": form.cleaned_data["skip_invalid"]}
            if form.cleaned_data["task_mode"]:
                options["task_mode"] = form.cleaned_data["task_mode"]
            if form.cleaned_data["pairs_per_prompt"]:
                options["pairs_per_prompt"] = form.cleaned_data["pairs_per_prompt"]
            try:
                report = prompts_import_by(
                    project=project,
                    actor=request.user,
                    stream=upload.open("rb"),
                    filename=upload.name,
                    **options,
                )
            except ImportFailed as exc:
                report, failed, status = exc.report, True, 400
            except ServiceError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
                status = exc.status_code
            else:
                messages.success(
                    request,
                    f"Imported {report.prompts} prompt(s), {report.candidates} response(s) and {report.tasks} task(s).",
                )
    else:
        form = ImportForm()
    return render(
        request,
        "annotate/manage/import.html",
        {
            **_project_nav(project, roles, "import"),
            "form": form,
            "report": report,
            "failed": failed,
            "max_bytes_human": human_bytes(max_bytes),
        },
        status=status,
    )


# --- manager: audit -------------------------------------------------------------------------------


def _audit_value(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list) and value and all(isinstance(v, dict) and "key" in v for v in value):
        return (
            ", ".join(str(v["key"]) + (" (required)" if v.get("required") else "") for v in value) or "none"
        )
    if isinstance(value, list | dict) and not value:
        return "none"
    return str(value)


def _audit_details(details: dict) -> list[tuple[str, str]]:
    """An audit event's details as (label, text) pairs; settings changes read ``old → new``."""
    rows = []
    for key, value in (details or {}).items():
        if key == "changes" and isinstance(value, dict):
            for field, change in value.items():
                if isinstance(change, list) and len(change) == 2:
                    rows.append((field, f"{_audit_value(change[0])} → {_audit_value(change[1])}"))
        else:
            rows.append((key.replace("_", " "), _audit_value(value)))
    return rows


@login_required
@require_GET
def manage_audit(request: HttpRequest, slug: str) -> HttpResponse:
    project, roles = _project_for(request, slug, "manage")
    events = [
        {"event": ev, "details": _audit_details(ev.details)}
        for ev in selectors.audit_events_for_project(project=project)
    ]
    return render(
        request, "annotate/manage/audit.html", {**_project_nav(project, roles, "audit"), "events": events}
    )
