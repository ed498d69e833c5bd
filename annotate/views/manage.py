"""The manager's project pages: progress, settings, guidelines, members, imports, audit log.

Plain forms (post, redirect, get); views parse input, call one service or selector, and render.
Access (capability "manage") is checked by ``core.access.project_page``.
"""

from __future__ import annotations

import difflib

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotate import selectors
from annotate.errors import ServiceError, found
from annotate.forms import (
    DimensionFormSet,
    GuidelineForm,
    ImportForm,
    MemberAddForm,
    ProjectSettingsForm,
    dimension_rows,
)
from annotate.models import Membership
from annotate.rendering import render_markdown
from annotate.services.guidelines import guideline_publish
from annotate.services.imports import ImportFailed, prompts_import
from annotate.services.manage import member_add, member_deactivate, project_settings_change
from annotate.throttles import page_rate_limit
from annotate.uploads import human_bytes, import_size_limit_install, import_too_large_message
from core.access import ProjectAccess, project_page
from core.pages import add_service_error, form_submit, object_button
from generation import selectors as generation_selectors


def _duration(ms: float | None) -> str:
    if ms is None:
        return "—"
    seconds = round(ms / 1000)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


# --- manager: progress -------------------------------------------------------------------------------


@project_page("manage")
@require_GET
def manage_progress(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    project = access.project
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
            **access.nav("progress"),
            "progress": progress,
            "percent_done": round(100 * progress["done"] / total) if total else 0,
            "labelers": labelers,
            "active_labelers": active_labelers,
            "guideline": guideline,
            "guideline_acks": len(selectors.guideline_ack_user_ids(guideline=guideline)),
            "staged_jobs": (
                generation_selectors.jobs_awaiting_release(project=project) if access.can("release") else []
            ),
        },
    )


# --- manager: settings -----------------------------------------------------------------------------


@project_page("manage")
@require_http_methods(["GET", "POST"])
def manage_settings(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    project = access.project
    initial_dims = [
        {"label": d.label, "key": d.key, "description": d.description, "required": d.required}
        for d in project.dimensions.all()
    ]
    if request.method == "POST":
        form = ProjectSettingsForm(request.POST, project=project)
        formset = DimensionFormSet(request.POST, prefix="dim")
        saved = formset.is_valid() and form_submit(
            form,
            lambda _data: project_settings_change(
                project=project,
                actor=request.user,
                values=form.settings_values(),
                dimensions=dimension_rows(formset),
            ),
        )
        if saved:
            _project, changes = saved
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
        {**access.nav("settings"), "form": form, "formset": formset},
        status=400 if request.method == "POST" else 200,  # a POST that saved has redirected
    )


# --- manager: guidelines ---------------------------------------------------------------------------


@project_page("manage")
@require_http_methods(["GET", "POST"])
def manage_guidelines(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    project = access.project
    current = selectors.guideline_current(project=project)
    if request.method == "POST":
        form = GuidelineForm(request.POST)
        guideline = form_submit(  # the service refuses a body identical to the current version's
            form,
            lambda data: guideline_publish(
                project=project, actor=request.user, body=data["body"], change_note=data["change_note"]
            ),
        )
        if guideline is not None:
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
            **access.nav("guidelines"),
            "form": form,
            "current": current,
            "versions": selectors.guideline_versions(project=project),
            "preview_html": render_markdown(preview_source),
            "labeler_count": selectors.active_labeler_count(project=project),
        },
        status=400 if request.method == "POST" else 200,  # a POST that published has redirected
    )


@project_page("manage")
@require_POST
def manage_guideline_preview(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    """Server-side Markdown preview for the editor: sanitized HTML, the same as labelers will see."""
    body = request.POST.get("body", "")
    if len(body) > 200_000:
        return HttpResponse("The text is too long to preview.", status=400, content_type="text/plain")
    html = render_markdown(body) or '<p class="muted">Nothing to preview yet.</p>'
    return HttpResponse(html, content_type="text/html; charset=utf-8")


@project_page("manage")
@require_GET
def manage_guideline_version(request: HttpRequest, access: ProjectAccess, version: int) -> HttpResponse:
    guideline = found(selectors.guideline_get(project=access.project, version=version), "No such version.")
    return render(
        request,
        "annotate/manage/guideline_version.html",
        {
            **access.nav("guidelines"),
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


@project_page("manage")
@require_GET
def manage_guideline_diff(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    project = access.project
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
            **access.nav("guidelines"),
            "old": old,
            "new": new,
            "rows": rows,
            "added": sum(1 for r in rows if r["kind"] == "add"),
            "removed": sum(1 for r in rows if r["kind"] == "del"),
            "versions": versions,
        },
    )


# --- manager: members ------------------------------------------------------------------------------


@project_page("manage")
@require_http_methods(["GET", "POST"])
def manage_members(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    project = access.project
    created = None
    if request.method == "POST":
        form = MemberAddForm(request.POST)
        added = form_submit(
            form,
            lambda data: member_add(
                project=project,
                actor=request.user,
                username=data["username"],
                email=data["email"],
                role=data["role"],
            ),
        )
        if added is not None:
            membership, password = added
            if password is None:
                messages.success(request, f"{membership.user} is now a {_role_name(membership)} here.")
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
    response = render(
        request,
        "annotate/manage/members.html",
        {
            **access.nav("members"),
            "form": form,
            "memberships": memberships,
            "created": created,
            "guideline": guideline,
            "acked": acked,
        },
        status=201 if created else 400 if request.method == "POST" else 200,
    )
    if created:
        response["Cache-Control"] = "no-store"  # it shows a password: never cached (as the API's answer)
    return response


def _membership_for(access: ProjectAccess, membership_id: int) -> Membership:
    return get_object_or_404(
        Membership.objects.select_related("user"), pk=membership_id, project=access.project
    )


def _back_to_members(access: ProjectAccess, _membership: Membership) -> HttpResponse:
    return redirect("annotate:manage_members", slug=access.project.slug)


def _role_name(membership: Membership) -> str:
    return membership.get_role_display().lower()


@object_button("manage", find=_membership_for, back=_back_to_members)
def manage_member_deactivate(request: HttpRequest, access: ProjectAccess, membership: Membership) -> str:
    released = member_deactivate(project=access.project, actor=request.user, membership=membership)
    return f"{membership.user} is no longer a {_role_name(membership)} here." + (
        f" {released} task(s) they held went back to the pool." if released else ""
    )


@object_button("manage", find=_membership_for, back=_back_to_members)
def manage_member_reactivate(request: HttpRequest, access: ProjectAccess, membership: Membership) -> str:
    member_add(
        project=access.project,
        actor=request.user,
        username=membership.user.get_username(),
        role=membership.role,
    )
    return f"{membership.user} is a {_role_name(membership)} here again."


# --- manager: import -------------------------------------------------------------------------------


@csrf_exempt  # the CSRF check runs in _manage_import, after the size-limit handler is installed
@project_page("manage")  # reads the session only, not the body: the handler below still applies
@require_http_methods(["GET", "POST"])
@page_rate_limit("import")
def manage_import(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    if request.method == "POST":
        import_size_limit_install(request)
    return _manage_import(request, access)


@csrf_protect
def _manage_import(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    project = access.project
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
                report = prompts_import(
                    project=project,
                    actor=request.user,
                    stream=upload.open("rb"),
                    filename=upload.name,
                    **options,
                )
            except ImportFailed as exc:
                report, failed, status = exc.report, True, 400
            except ServiceError as exc:
                add_service_error(form, exc)
                status = exc.status_code
            else:
                messages.success(
                    request,
                    f"Imported {report.prompts} prompt(s), {report.candidates} response(s) and {report.tasks} task(s).",
                )
        else:
            status = 400
    else:
        form = ImportForm()
    return render(
        request,
        "annotate/manage/import.html",
        {
            **access.nav("import"),
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


@project_page("manage")
@require_GET
def manage_audit(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    project = access.project
    events = [
        {"event": ev, "details": _audit_details(ev.details)}
        for ev in selectors.audit_events_for_project(project=project)
    ]
    return render(request, "annotate/manage/audit.html", {**access.nav("audit"), "events": events})
