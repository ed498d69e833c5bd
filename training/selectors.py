"""Reads of the training app: runs, their metric series, charts and log tails."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

from django.db.models import QuerySet

from annotate.models import Project
from core import jobs, paths
from core.jobs import job_status_payload
from training.models import Export, ExportState, MetricPoint, RunState, TrainingRun
from training.runners.models import checkpoint_step, checkpoints_dir, resume_checkpoint

# What the run page charts: (title, series keys tried in order, first found per point wins).
CHARTS: list[tuple[str, list[str]]] = [
    ("Loss", ["loss", "eval_loss"]),
    ("Accuracy", ["accuracy", "eval_accuracy"]),
    ("Reward", ["reward", "eval_reward", "margin", "eval_margin"]),
    ("KL", ["kl", "eval_kl"]),
]
CHART_W, CHART_H, PAD, PAD_LEFT = 340, 140, 22, 48

# Readable names for the metrics runners report; anything else is humanised by metric_label().
METRIC_LABELS: dict[str, str] = {
    "loss": "Training loss",
    "eval_loss": "Held-out loss",
    "accuracy": "Training accuracy",
    "eval_accuracy": "Held-out accuracy",
    "eval_before_accuracy": "Held-out accuracy before training",
    "eval_soft_accuracy": "Held-out accuracy against the soft labels",
    "eval_before_soft_accuracy": "Held-out accuracy against the soft labels before training",
    "eval_soft_log_loss": "Held-out log loss against the soft labels",
    "eval_before_soft_log_loss": "Held-out log loss against the soft labels before training",
    "eval_before_margin": "Held-out reward margin before training",
    "margin": "Reward margin",
    "eval_margin": "Held-out reward margin",
    "reward": "Reward",
    "eval_reward": "Held-out reward",
    "eval_before_reward": "Held-out reward before training",
    "kl": "KL to the reference (nats)",
    "eval_kl": "Held-out KL to the reference (nats)",
    "entropy": "Entropy (nats/token)",
    "eos_rate": "Responses that end properly",
    "response_length": "Response length (tokens)",
    "learning_rate": "Learning rate",
    "grad_norm": "Gradient norm",
    "epoch": "Epoch",
    "train_runtime": "Training time (s)",
    "train_samples_per_second": "Samples per second",
    "train_steps_per_second": "Steps per second",
    "step": "Step",
}
# The few that matter, in this order, when a run has them; the rest go under "All metrics".
HEADLINE_METRICS = [
    "eval_accuracy",
    "eval_before_accuracy",
    "eval_soft_accuracy",
    "eval_before_soft_accuracy",
    "eval_margin",
    "eval_before_margin",
    "eval_reward",
    "eval_before_reward",
    "kl",
    "eos_rate",
    "eval_loss",
    "loss",
    "train_runtime",
]
MAX_HEADLINE = 8
_NOT_METRICS = {"samples", "output_dir", "step", "event"}
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def metric_label(key: str) -> str:
    """``eval_accuracy`` -> "Held-out accuracy"; unknown keys read as words (``rewards/chosen`` ->
    "Rewards · chosen")."""
    if key in METRIC_LABELS:
        return METRIC_LABELS[key]
    parts = [p.replace("_", " ").strip() for p in key.split("/") if p.strip()]
    text = " · ".join(parts) or key
    text = re.sub(r"^eval ", "held-out ", text)
    return text[:1].upper() + text[1:]


# Final figures that are no number: a run's yes/no choices (what it trained on) and its notes.
RUN_FLAGS = {"used_soft_labels": "Soft labels (p_chosen)", "used_margin": "Margins"}
RUN_NOTES = {"eval_skipped": "Held-out evaluation skipped"}


def run_summary(final: dict[str, Any]) -> dict[str, list[tuple[str, Any]]]:
    """The final metrics as (label, value) pairs: ``headline`` (the few that matter, in a fixed
    order) and ``other`` (everything else, by name); ``flags`` (what the run trained on, "yes"/"no")
    and ``notes`` (why a figure is missing, e.g. ``eval_skipped``: the run's own text, to escape)."""
    final = final or {}
    flags = [
        (label, "yes" if final[k] else "no")
        for k, label in RUN_FLAGS.items()
        if isinstance(final.get(k), bool)
    ]
    notes = [
        (label, final[k]) for k, label in RUN_NOTES.items() if isinstance(final.get(k), str) and final[k]
    ]
    numbers = {
        k: v
        for k, v in final.items()
        if k not in _NOT_METRICS and isinstance(v, int | float) and not isinstance(v, bool)
    }
    headline_keys = [k for k in HEADLINE_METRICS if k in numbers][:MAX_HEADLINE]
    other = sorted((k for k in numbers if k not in headline_keys), key=metric_label)
    return {
        "headline": [(metric_label(k), numbers[k]) for k in headline_keys],
        "other": [(metric_label(k), numbers[k]) for k in other],
        "flags": flags,
        "notes": notes,
    }


def clean_log(text: str) -> str:
    """A log as a person reads it: no ANSI colour or terminal-title codes, no control characters,
    and a progress bar redrawn with carriage returns shows only its last state."""
    text = _ANSI.sub("", text)
    lines = []
    for line in text.split("\n"):
        if "\r" in line:
            line = next((part for part in reversed(line.split("\r")) if part.strip()), "")
        lines.append(_CONTROL.sub("", line))
    return "\n".join(lines)


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


MAX_MODEL_OPTIONS = 200


def base_model_options(*, project: Project, policy_kinds: tuple[str, ...]) -> list[tuple[str, str]]:
    """(value, label) of the models a run of ``project`` may start from, for the form's datalist:
    its finished policy runs' outputs, the local/Hub models of the generation endpoints it may use
    (the demo's tiny model among them), the model folders in ``PREFHUB_ALLOWED_MODEL_DIRS`` and the
    Hub models in the local Hugging Face cache. An offer, not a rule: ``run_create`` checks what is
    submitted (``core.paths.usable_model``)."""
    from generation.models import Backend
    from generation.selectors import endpoints_for_project

    options: dict[str, str] = {}
    for run in finished_runs(project=project, kinds=policy_kinds).only("pk", "kind", "output_path")[:50]:
        if run.output_path:
            options.setdefault(run.output_path, f"run #{run.pk} ({run.get_kind_display()}) output")
    endpoints = endpoints_for_project(project=project, active_only=True).filter(
        backend__in=(Backend.TRANSFORMERS, Backend.VLLM)
    )
    for endpoint in endpoints[:100]:
        options.setdefault(endpoint.model, f"endpoint {endpoint.name}")
    for root in paths.extra_roots(paths.MODEL):
        try:
            folders = sorted(p for p in Path(root).iterdir() if (p / "config.json").is_file())
        except OSError:
            continue
        for folder in folders[:50]:
            options.setdefault(str(folder), "allowed models folder")
    for repo_id in _cached_hub_models():
        options.setdefault(repo_id, "Hugging Face cache")
    return list(options.items())[:MAX_MODEL_OPTIONS]


def _cached_hub_models(limit: int = 100) -> list[str]:
    """Hub ids of the models in the local Hugging Face cache (config.json downloaded)."""
    cache = Path(paths.hub_cache_dir())
    try:
        repos = sorted(p.name for p in cache.iterdir() if p.name.startswith("models--"))
    except OSError:
        return []
    ids = []
    for name in repos:
        repo_id = name[len("models--") :].replace("--", "/")
        if paths.is_hub_id(repo_id) and paths.cached_hub_folder(repo_id) is not None:
            ids.append(repo_id)
        if len(ids) >= limit:
            break
    return ids


def export_get(*, project: Project, version: int) -> Export | None:
    """A project's export by its version, as the pages, the API and ``train --export SLUG/vN``
    name it."""
    return (
        Export.objects.select_related("project", "created_by")
        .filter(project=project, version=version)
        .first()
    )


def trainable_exports(*, project: Project) -> QuerySet[Export]:
    from training.services.runs import TRAINABLE_FORMATS

    return Export.objects.filter(
        project=project, state=ExportState.DONE, format__in=TRAINABLE_FORMATS
    ).order_by("-version")


# Below these, held-out figures computed on the test split are noise (a 5-row test split moves
# accuracy in steps of 20 points).
MIN_TEST_ROWS = 50


def export_warnings(*, export: Export) -> list[str]:
    """What a researcher should know before training on an export: a test split that is missing
    though one was asked for, or too small to measure anything."""
    counts = (export.manifest or {}).get("counts") or {}
    test_size = float((export.options or {}).get("test_size") or 0)
    if export.state != ExportState.DONE or test_size <= 0 or "test" not in counts:
        return []
    test = int(counts.get("test") or 0)
    if test == 0:
        return [
            "This export has no test rows although a test split was asked for (too few prompts): "
            "held-out figures cannot be computed from it."
        ]
    if test < MIN_TEST_ROWS:
        return [
            f"The test split has only {test} rows: held-out accuracy from it moves in steps of "
            f"{100 / test:.0f} points. Label more prompts or raise the test size."
        ]
    return []


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
                    "key": metric_label(key),
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
    return clean_log(text)


def run_resumption(*, run: TrainingRun) -> TrainingRun | None:
    """The run resuming ``run`` now (queued or running) or that resumed it to the end (done), if
    any: ``run`` is then not to be resumed again. A failed or cancelled resumption leaves it
    resumable."""
    return run.resumptions.filter(state__in=(*jobs.ACTIVE_STATES, RunState.DONE)).order_by("-pk").first()


def run_resume_point(*, run: TrainingRun) -> int | None:
    """The step of the newest checkpoint a failed or cancelled run left (where resuming it
    continues), else None; None too while another run resumes it or once one did
    (``run_resumption``)."""
    if run.state not in (RunState.FAILED, RunState.CANCELLED):
        return None
    checkpoint = resume_checkpoint(str(checkpoints_dir(run.output_path))) if run.output_path else None
    # the query last: most ended runs (in a list, every row) have no checkpoint to look further for
    if checkpoint is None or run_resumption(run=run) is not None:
        return None
    return checkpoint_step(checkpoint)


def run_without_checkpoint_hint(*, run: TrainingRun) -> str:
    """What to do with an ended run that cannot be resumed itself: resume the nearest run up its
    chain of resumptions that can be (a resumption that ended before its own first checkpoint),
    else launch it again."""
    earlier = run.resumed_from
    while earlier is not None:
        step = run_resume_point(run=earlier)
        if step is not None:
            return f"Resume run #{earlier.pk} again instead (its checkpoint at step {step})."
        earlier = earlier.resumed_from
    return "Launch it again."


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
        "resumed_from": run.resumed_from_id,
        "resumable_from_step": run_resume_point(run=run),
        "created_at": run.created_at.isoformat() if run.created_at else None,
    }
