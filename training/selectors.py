"""Reads of the training app: runs, their metric series, charts and log tails."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from django.db.models import QuerySet

from annotate.models import Project
from core import jobs
from core.jobs import job_status_payload
from training.models import Export, ExportState, MetricPoint, RunState, TrainingRun

# What the run page charts: (title, series keys tried in order, first found per point wins).
CHARTS: list[tuple[str, list[str]]] = [
    ("Loss", ["loss", "eval_loss"]),
    ("Accuracy", ["accuracy", "eval_accuracy"]),
    ("Reward", ["reward", "eval_reward", "margin", "eval_margin"]),
    ("KL", ["kl", "eval_kl"]),
]
CHART_W, CHART_H, PAD, PAD_LEFT = 340, 140, 22, 48
MAX_POINTS = 400
ACTIVE_STATES = jobs.ACTIVE_STATES


def runs_for_project(*, project: Project) -> QuerySet[TrainingRun]:
    return TrainingRun.objects.filter(project=project).select_related(
        "export", "base_run", "reward_run", "registered_endpoint", "created_by"
    )


def run_get(*, project: Project, run_id: int) -> TrainingRun | None:
    return runs_for_project(project=project).filter(pk=run_id).first()


def finished_runs(*, project: Project, kinds: tuple[str, ...] | None = None) -> QuerySet[TrainingRun]:
    qs = TrainingRun.objects.filter(project=project, state=RunState.DONE)
    if kinds:
        qs = qs.filter(kind__in=kinds)
    return qs.order_by("-created_at")


def trainable_exports(*, project: Project) -> QuerySet[Export]:
    from training.services.runs import TRAINABLE_FORMATS

    return Export.objects.filter(
        project=project, state=ExportState.DONE, format__in=TRAINABLE_FORMATS
    ).order_by("-version")


def run_points(*, run: TrainingRun, after_id: int = 0, limit: int = 5000) -> list[dict[str, Any]]:
    rows = (
        MetricPoint.objects.filter(run=run, id__gt=after_id)
        .order_by("id")
        .values("id", "step", "values")[:limit]
    )
    return [{"id": r["id"], "step": r["step"], **r["values"]} for r in rows]


def run_series(*, run: TrainingRun) -> dict[str, list[tuple[int, float]]]:
    """Every numeric metric as a (step, value) series, in logging order."""
    series: dict[str, list[tuple[int, float]]] = {}
    for step, values in MetricPoint.objects.filter(run=run).order_by("id").values_list("step", "values"):
        for key, value in (values or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                series.setdefault(key, []).append((step, float(value)))
    return series


def _downsample(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    if len(points) <= MAX_POINTS:
        return points
    stride = math.ceil(len(points) / MAX_POINTS)
    return [*points[::stride], points[-1]]


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.001:
        return f"{value:.2e}"
    return f"{value:.3g}"


def run_charts(
    *, run: TrainingRun, series: dict[str, list[tuple[int, float]]] | None = None
) -> list[dict[str, Any]]:
    """SVG geometry for the run page's charts: one chart per entry of CHARTS with data, each with
    polylines (train and eval series) scaled into a CHART_W x CHART_H box."""
    series = run_series(run=run) if series is None else series
    charts = []
    for title, keys in CHARTS:
        lines = [(k, _downsample(series[k])) for k in keys if series.get(k)]
        if not lines:
            continue
        steps = [s for _, pts in lines for s, _ in pts]
        values = [v for _, pts in lines for _, v in pts]
        x0, x1 = min(steps), max(steps)
        y0, y1 = min(values), max(values)
        if y1 - y0 < 1e-12:
            y0, y1 = y0 - 0.5, y1 + 0.5
        if x1 == x0:
            x1 = x0 + 1
        inner_w, inner_h = CHART_W - PAD_LEFT - PAD, CHART_H - 2 * PAD

        def xy(step: int, value: float, x0=x0, x1=x1, y0=y0, y1=y1, inner_w=inner_w, inner_h=inner_h):
            x = PAD_LEFT + (step - x0) / (x1 - x0) * inner_w
            y = PAD + (1 - (value - y0) / (y1 - y0)) * inner_h
            return round(x, 1), round(y, 1)

        polylines = []
        for i, (key, pts) in enumerate(lines):
            coords = [xy(s, v) for s, v in pts]
            polylines.append(
                {
                    "key": key,
                    "points": " ".join(f"{x},{y}" for x, y in coords),
                    "last_x": coords[-1][0],
                    "last_y": coords[-1][1],
                    "last": _fmt(pts[-1][1]),
                    "series_class": f"series-{i}",
                }
            )
        charts.append(
            {
                "title": title,
                "lines": polylines,
                "width": CHART_W,
                "height": CHART_H,
                "pad": PAD,
                "left": PAD_LEFT,
                "right": CHART_W - PAD,
                "bottom": CHART_H - PAD,
                "y_min": _fmt(y0),
                "y_max": _fmt(y1),
                "x_min": x0,
                "x_max": x1,
            }
        )
    return charts


def run_log_tail(*, run: TrainingRun, max_bytes: int = 64 * 1024) -> str:
    """The end of the run's log (the page escapes it)."""
    if not run.log_path:
        return ""
    path = Path(run.log_path)
    if not path.is_file():
        return ""
    size = path.stat().st_size
    with path.open("rb") as fh:
        if size > max_bytes:
            fh.seek(size - max_bytes, os.SEEK_SET)
        data = fh.read()
    text = data.decode("utf-8", errors="replace")
    if size > max_bytes:
        text = "…" + text.split("\n", 1)[-1]
    return text


def run_status(*, run: TrainingRun) -> dict[str, Any]:
    """What the API and the run page's poller show."""
    return {
        **job_status_payload(run),
        "project": run.project.slug,
        "kind": run.kind,
        "base_model": run.base_model,
        "export": run.export.version if run.export_id else None,
        "dataset_path": run.dataset_path,
        "base_run": run.base_run_id,
        "reward_run": run.reward_run_id,
        "config": run.config,
        "metrics": run.metrics,
        "output_path": run.output_path if run.state == RunState.DONE else "",
        "cancel_requested": run.cancel_requested,
        "registered_endpoint": run.registered_endpoint.name if run.registered_endpoint_id else None,
        "created_at": run.created_at.isoformat() if run.created_at else None,
    }
