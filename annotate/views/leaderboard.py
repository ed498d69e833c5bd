"""The model leaderboard page and its CSV (managers and researchers: ``view_reports``).

Thin: parse the style toggle, call ``project_leaderboard``, render. Model names are untrusted
(imported or generated metadata): the template autoescapes them and the CSV neutralises cells a
spreadsheet would run as formulas.
"""

from __future__ import annotations

import csv
import io
from functools import wraps

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotate.selectors_leaderboard import project_leaderboard
from annotate.views.charts import interval_chart
from annotate.views.reports import _csv_cell
from core.access import ProjectAccess, project_page

STYLE_VALUES = {"": False, "off": False, "0": False, "on": True, "1": True}
CSV_COLUMNS = (
    "rank",
    "model",
    "rating",
    "rating_low",
    "rating_high",
    "rank_low",
    "rank_high",
    "games",
    "wins",
    "ties",
    "both_bad",
    "losses",
)


def leaderboard_view(view):
    """A view of the project's leaderboard (``view_reports``, GET): the ``style`` toggle parsed
    (400 unless on or off), the board computed; called as ``view(request, access, board, style)``."""

    @project_page("view_reports")
    @require_GET
    @wraps(view)
    def wrapper(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
        style = STYLE_VALUES.get((request.GET.get("style") or "").strip().lower())
        if style is None:
            return HttpResponse(
                "style must be on or off.", status=400, content_type="text/plain; charset=utf-8"
            )
        return view(request, access, project_leaderboard(project=access.project, style=style), style)

    return wrapper


@leaderboard_view
def leaderboard_page(request: HttpRequest, access: ProjectAccess, board: dict, style: bool) -> HttpResponse:
    context = {
        **access.nav("reports"),
        "board": board,
        "style": style,
        "chart": interval_chart(board["rows"]),
    }
    return render(request, "reports/leaderboard.html", context)


@leaderboard_view
def leaderboard_csv(request: HttpRequest, access: ProjectAccess, board: dict, style: bool) -> HttpResponse:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for row in board["rows"]:
        writer.writerow([_csv_cell(row.get(c)) for c in CSV_COLUMNS])
    resp = HttpResponse(buf.getvalue(), content_type="text/csv; charset=utf-8")
    suffix = "-style" if style else ""
    resp["Content-Disposition"] = f'attachment; filename="{access.project.slug}-leaderboard{suffix}.csv"'
    return resp
