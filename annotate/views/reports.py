"""Report pages for managers and researchers: the agreement/quality report, its downloads,
recompute and send-back.

Views parse input, call one service and render. The charts are inline SVG drawn by the templates
(``templates/reports/_*.html``) from the geometry computed in ``annotate.views.charts``.
"""

from __future__ import annotations

import csv
import io
import json

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from annotate.errors import ServiceError
from annotate.models import TaskKind
from annotate.services import reports
from annotate.views.charts import bar_chart, heatmap, interval_chart, line_chart
from core.access import ProjectAccess, project_page

CSV_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


# --- pages ---------------------------------------------------------------------------------------


@project_page("view_reports")
@require_GET
def report_page(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    project = access.project
    latest, pending = reports.report_for_page(project=project, user=request.user)
    context = {**access.nav("reports"), "snapshot": latest, "pending": pending, "tables": reports.TABLES}
    if latest is not None:
        data = latest.data
        pair_index = _int_param(
            request.GET.get("pair"), default=0, upper=max(len(data.get("pairs", [])) - 1, 0)
        )
        context.update(
            {
                "report": data,
                "is_ranking": data.get("kind") == TaskKind.RANKING,
                "time_chart": line_chart(data["over_time"]["rows"]),
                "labeler_chart": bar_chart(data["labelers"]),
                "confusion": heatmap(data["consensus_confusion"]["matrix"], data["categories"]),
                "pair_index": pair_index,
                "pair": data["pairs"][pair_index] if data["pairs"] else None,
                "pair_heatmap": heatmap(data["pairs"][pair_index]["matrix"], data["categories"])
                if data["pairs"]
                else None,
                "leaderboard_chart": interval_chart(data["leaderboard"]["rows"]),
                "send_back_extra": range(1, reports.MAX_SEND_BACK_EXTRA + 1),
            }
        )
    return render(request, "reports/report.html", context)


def _int_param(raw: str | None, *, default: int, upper: int) -> int:
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        return default
    return min(max(value, 0), upper)


@project_page("view_reports")
@require_GET
def report_download(request: HttpRequest, access: ProjectAccess, table: str, fmt: str) -> HttpResponse:
    project = access.project
    if table not in reports.TABLES:
        raise Http404("No such table.")
    latest, _ = reports.report_for_page(project=project, user=request.user)
    if latest is None:
        return HttpResponse("The report is still being computed; try again in a minute.", status=409)
    columns, rows = reports.report_table(latest.data, table)
    filename = f"{project.slug}-{table}.{fmt}"
    if fmt == "json":
        payload = {
            "project": project.slug,
            "table": table,
            "computed_at": latest.computed_at.isoformat() if latest.computed_at else None,
            "columns": columns,
            "rows": rows,
        }
        resp = JsonResponse(payload, json_dumps_params={"indent": 1})
    else:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_cell(row.get(c)) for c in columns])
        resp = HttpResponse(buf.getvalue(), content_type="text/csv; charset=utf-8")
    resp["Content-Disposition"] = f'attachment; filename="{filename}"'
    return resp


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value)
    if isinstance(value, str) and value.startswith(CSV_FORMULA_PREFIXES):
        return "'" + value  # keep spreadsheets from running user-supplied text as a formula
    return value


@project_page("view_reports")
@require_POST
def report_recompute(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    project = access.project
    try:
        snap = reports.report_refresh(project=project, actor=request.user)
    except Exception:  # the failure is recorded on the snapshot; the page says so
        messages.error(request, "Computing the report failed; the error was logged.")
        return redirect("reports:project", slug=project.slug)
    if snap.state == snap.State.READY:
        messages.success(request, f"Report recomputed in {snap.duration_ms} ms.")
    else:
        messages.info(request, "The report is being computed in the background; reload in a minute.")
    return redirect("reports:project", slug=project.slug)


@project_page("manage")
@require_POST
def report_send_back(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    project = access.project
    try:
        task_ids = [int(t) for t in request.POST.getlist("task_ids")]
        extra = int(request.POST.get("extra_labels", "1"))
    except ValueError:
        messages.error(request, "Task ids and the number of labels must be whole numbers.")
        return redirect("reports:project", slug=project.slug)
    try:
        sent = reports.tasks_send_back(
            project=project, task_ids=task_ids, extra_labels=extra, actor=request.user
        )
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        capped = (
            f" {sent.at_most} already ask(s) for the most labels ({reports.MAX_TARGET_LABELS}) and stayed as they were."
            if sent.at_most
            else ""
        )
        messages.success(
            request,
            f"{sent.changed} task(s) sent back for {extra} more label(s) each.{capped} "
            "Recompute the report once they are in.",
        )
    return redirect(reverse("reports:project", args=[project.slug]) + "#low-agreement")
