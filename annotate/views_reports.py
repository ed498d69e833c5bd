"""Report pages for managers and researchers: the agreement/quality report, its downloads,
recompute and send-back.

Views parse input, call one service and render. The charts are inline SVG drawn by the templates
(``templates/reports/_*.html``) from the geometry computed below, with presentation attributes
only (no ``style=""``, no script), so the site's CSP needs no 'unsafe-inline'; every name in them
is escaped by template autoescaping.
"""

from __future__ import annotations

import csv
import io
import json
import math

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from annotate.errors import ServiceError
from annotate.models import Project, TaskKind
from annotate.permissions import CAPABILITIES, project_for_request
from annotate.services import reports

CSV_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _project_for(request: HttpRequest, slug: str, capability: str) -> tuple[Project, set[str]]:
    return project_for_request(request, slug, capability)


def _nav(project: Project, roles: set[str]) -> dict:
    can = {cap: bool(roles & CAPABILITIES[cap]) for cap in ("label", "manage", "view_reports", "research")}
    return {
        "project": project,
        "active_tab": "reports",
        "can_label": can["label"],
        "can_manage": can["manage"],
        "can_reports": can["view_reports"],
        "can_research": can["research"],
    }


# --- pages ---------------------------------------------------------------------------------------


@login_required
@require_GET
def report_page(request: HttpRequest, slug: str) -> HttpResponse:
    project, roles = _project_for(request, slug, "view_reports")
    latest, pending = reports.report_for_page(project=project, user=request.user)
    context = {**_nav(project, roles), "snapshot": latest, "pending": pending, "tables": reports.TABLES}
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


@login_required
@require_GET
def report_download(request: HttpRequest, slug: str, table: str, fmt: str) -> HttpResponse:
    project, _ = _project_for(request, slug, "view_reports")
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


@login_required
@require_POST
def report_recompute(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = _project_for(request, slug, "view_reports")
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


@login_required
@require_POST
def report_send_back(request: HttpRequest, slug: str) -> HttpResponse:
    project, _ = _project_for(request, slug, "manage")
    try:
        task_ids = [int(t) for t in request.POST.getlist("task_ids")]
        extra = int(request.POST.get("extra_labels", "1"))
    except ValueError:
        messages.error(request, "Task ids and the number of labels must be whole numbers.")
        return redirect("reports:project", slug=project.slug)
    try:
        changed = reports.tasks_send_back(
            project=project, task_ids=task_ids, extra_labels=extra, actor=request.user
        )
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"{changed} task(s) sent back for {extra} more label(s) each. Recompute the report once they are in.",
        )
    return redirect(reverse("reports:project", args=[project.slug]) + "#low-agreement")


# --- chart geometry (presentation only) ---------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "\u2013" if value is None else f"{value:.{digits}f}"


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw)
    start = math.ceil(lo / step) * step
    ticks = []
    t = start
    while t <= hi + 1e-9:
        ticks.append(round(t, 10))
        t += step
    return ticks


def line_chart(rows: list[dict], *, width: int = 720, height: int = 240) -> dict | None:
    """Agreement with consensus per day/week: a polyline on a 0..1 axis."""
    pts = [r for r in rows if r.get("agreement") is not None]
    if not pts:
        return None
    left, right, top, bottom = 48, 44, 16, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(pts)
    step = plot_w / max(n - 1, 1)
    points = []
    for i, r in enumerate(pts):
        x = left + (i * step if n > 1 else plot_w / 2)
        y = top + (1 - r["agreement"]) * plot_h
        points.append(
            {
                "x": round(x, 1),
                "y": round(y, 1),
                "label": r["start"],
                "value": _fmt(r["agreement"]),
                "n": r["annotations"],
            }
        )
    every = max(1, math.ceil(n / 8))
    return {
        "width": width,
        "height": height,
        "left": left,
        "right_x": width - right,
        "bottom_y": top + plot_h,
        "points": points,
        "polyline": " ".join(f"{p['x']},{p['y']}" for p in points),
        "y_ticks": [
            {"y": round(top + (1 - v) * plot_h, 1), "label": f"{v:.0%}"} for v in (0, 0.25, 0.5, 0.75, 1)
        ],
        "x_labels": [p for i, p in enumerate(points) if i % every == 0 or i == n - 1],
    }


def bar_chart(labelers: list[dict], *, width: int = 720, row_h: int = 26, limit: int = 40) -> dict | None:
    """Each labeler's agreement with the others' consensus, as horizontal bars (0..100%)."""
    rows = [r for r in labelers if r.get("consensus_agreement") is not None]
    rows = sorted(rows, key=lambda r: (r["consensus_agreement"], r["username"]))[:limit]
    if not rows:
        return None
    label_w, right = 150, 70
    plot_w = width - label_w - right
    bars = []
    for i, r in enumerate(rows):
        v = r["consensus_agreement"]
        bars.append(
            {
                "y": 8 + i * row_h,
                "text_y": 8 + i * row_h + row_h / 2 + 4,
                "w": round(max(v * plot_w, 1), 1),
                "value": f"{v:.0%}",
                "value_x": round(label_w + v * plot_w + 6, 1),
                "name": r["username"],
                "n": r["consensus_items"],
                "alert": bool(r.get("alerts")),
            }
        )
    height = 8 + len(rows) * row_h + 24
    return {
        "width": width,
        "height": height,
        "label_w": label_w,
        "bar_h": row_h - 8,
        "axis_y": height - 20,
        "ticks": [
            {"x": round(label_w + v * plot_w, 1), "label": f"{v:.0%}"} for v in (0, 0.25, 0.5, 0.75, 1)
        ],
        "bars": bars,
    }


def _blend(frac: float) -> tuple[str, str]:
    """Cell fill from light slate to deep blue, and a readable text colour on it."""
    lo, hi = (241, 245, 249), (29, 78, 216)
    rgb = tuple(round(a + (b - a) * frac) for a, b in zip(lo, hi, strict=True))
    return "#{:02x}{:02x}{:02x}".format(*rgb), ("#ffffff" if frac > 0.55 else "#0f172a")


def heatmap(matrix: list[list[int]], categories: list[str], *, cell: int = 64) -> dict | None:
    """A k x k count matrix, shaded by each row's share (what a row's labels were matched with)."""
    if not matrix or not any(any(r) for r in matrix):
        return None
    k = len(categories)
    left, top = 96, 40
    cells = []
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        for j, n in enumerate(row):
            fill, ink = _blend(n / total)
            cells.append(
                {
                    "x": left + j * cell,
                    "y": top + i * cell,
                    "cx": left + j * cell + cell / 2,
                    "cy": top + i * cell + cell / 2 + 5,
                    "fill": fill,
                    "ink": ink,
                    "n": n,
                    "share": f"{n / total:.0%}",
                    "row": categories[i],
                    "col": categories[j],
                }
            )
    return {
        "width": left + k * cell + 8,
        "height": top + k * cell + 8,
        "cell": cell,
        "cells": cells,
        "cols": [{"x": left + j * cell + cell / 2, "label": c} for j, c in enumerate(categories)],
        "rows": [{"y": top + i * cell + cell / 2 + 5, "label": c} for i, c in enumerate(categories)],
        "left": left,
        "top": top,
    }


def interval_chart(rows: list[dict], *, width: int = 720, row_h: int = 30, limit: int = 30) -> dict | None:
    """The Bradley-Terry leaderboard: each model's Elo score with its bootstrap interval."""
    rows = rows[:limit]
    if not rows:
        return None
    lows = [r["elo_low"] if r.get("elo_low") is not None else r["elo"] for r in rows]
    highs = [r["elo_high"] if r.get("elo_high") is not None else r["elo"] for r in rows]
    lo, hi = min(lows), max(highs)
    pad = max((hi - lo) * 0.08, 10)
    lo, hi = lo - pad, hi + pad
    label_w, right = 190, 24
    plot_w = width - label_w - right

    def sx(v: float) -> float:
        return round(label_w + (v - lo) / (hi - lo) * plot_w, 1)

    items = []
    for i, (r, a, b) in enumerate(zip(rows, lows, highs, strict=True)):
        y = 10 + i * row_h + row_h / 2
        items.append(
            {
                "y": y,
                "cap_top": y - 5,
                "cap_bottom": y + 5,
                "text_y": y + 4,
                "x": sx(r["elo"]),
                "x_low": sx(a),
                "x_high": sx(b),
                "name": r["model"],
                "elo": f"{r['elo']:.0f}",
                "interval": f"{a:.0f}\u2013{b:.0f}",
            }
        )
    height = 10 + len(rows) * row_h + 28
    return {
        "width": width,
        "height": height,
        "label_w": label_w,
        "axis_y": height - 22,
        "ticks": [{"x": sx(t), "label": f"{t:.0f}"} for t in _nice_ticks(lo, hi)],
        "items": items,
        "cap": 5,
    }
