"""Chart geometry for the report page (presentation only): line, bar, heatmap and interval charts
as plain numbers and labels. The templates (``templates/reports/_*.html``) draw them as inline SVG
with presentation attributes only (no ``style=""``, no script), so the site's CSP needs no
'unsafe-inline'; every name in them is escaped by template autoescaping.
"""

from __future__ import annotations

import math


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


def _row_chart_frame(
    *, width: int, label_w: int, rows: int, row_h: int, top: int, bottom: int, axis_gap: int
) -> dict:
    """The frame of a chart drawn one row per item (names in a left column ``label_w`` wide): its
    size, and where the x axis of ``_chart_ticks.html`` stands, ``axis_gap`` above the bottom edge."""
    height = top + rows * row_h + bottom
    return {"width": width, "height": height, "label_w": label_w, "axis_y": height - axis_gap}


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
    return {
        **_row_chart_frame(
            width=width, label_w=label_w, rows=len(rows), row_h=row_h, top=8, bottom=24, axis_gap=20
        ),
        "bar_h": row_h - 8,
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
    return {
        **_row_chart_frame(
            width=width, label_w=label_w, rows=len(rows), row_h=row_h, top=10, bottom=28, axis_gap=22
        ),
        "ticks": [{"x": sx(t), "label": f"{t:.0f}"} for t in _nice_ticks(lo, hi)],
        "items": items,
        "cap": 5,
    }
