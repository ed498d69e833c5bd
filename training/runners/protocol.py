"""The protocol between a runner and the worker that launched it: metric lines on stdout, the
final line, the error line, failures as messages fit for the run's page, and cancellation.

The runners are plain Python (no Django): they read a dataset FILE and write a model directory, so
they run the same from a Celery worker, ``manage.py train`` or a cluster's ``accelerate launch``.
Their other shared parts: ``training.runners.data`` (dataset files, tokenisation) and
``training.runners.models`` (model and tokenizer loading, dtype, atomic output).

Metrics protocol (stdout, one JSON object per line, main process only)::

    {"event": "metrics", "step": 10, "loss": 0.61, "accuracy": 0.7, ...}
    {"event": "final", "step": 120, "eval_accuracy": 0.66, ..., "output_dir": "..."}   # last line on success
    {"event": "error", "message": "...", "kind": "data"}                                 # on failure (exit 1)

Everything else on stdout/stderr is log text.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import time
from typing import Any

METRIC_PREFIX = '{"event": '


class RunnerError(Exception):
    """A failure with a message fit for the run's page. ``kind``: data, model, config, oom, cancelled."""

    kind = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DataError(RunnerError):
    kind = "data"


class ModelError(RunnerError):
    kind = "model"


class Cancelled(RunnerError):
    kind = "cancelled"


# --- metrics ------------------------------------------------------------------------------------


def is_main_process() -> bool:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0) == 0


def _clean(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# TRL/transformers log keys -> the names the platform charts (loss, accuracy, margin, reward, kl).
_ALIASES = {
    "rewards/accuracies": "accuracy",
    "rewards/margins": "margin",
    "rewards/chosen": "reward_chosen",
    "rewards/rejected": "reward_rejected",
    "mean_reward": "reward",
    "reward": "reward",
    "objective/kl": "kl",
}


def normalise_metrics(logs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in logs.items():
        value = _clean(value)
        if isinstance(value, list | tuple):
            value = [_clean(v) for v in value if isinstance(_clean(v), int | float | str | bool)]
        elif not isinstance(value, int | float | str | bool) and value is not None:
            continue
        prefix, base = next(
            ((p, key[len(p) :]) for p in ("eval_before_", "eval_") if key.startswith(p)), ("", key)
        )
        name = _ALIASES.get(base, base.replace("/", "_"))
        out[prefix + name] = value
    return out


class Emitter:
    """Prints metric lines to stdout (and appends them to ``metrics_file``), main process only."""

    def __init__(self, metrics_file: str = "", *, stream=None) -> None:
        self.metrics_file = metrics_file
        self.stream = stream or sys.stdout
        self.enabled = is_main_process()
        self.last_step = 0

    def _write(self, payload: dict[str, Any]) -> None:
        if not self.enabled:
            return
        line = json.dumps(payload, default=str, allow_nan=False)
        self.stream.write(line + "\n")
        self.stream.flush()
        if self.metrics_file:
            with open(self.metrics_file, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")

    def metrics(self, step: int, values: dict[str, Any]) -> None:
        self.last_step = max(self.last_step, int(step))
        self._write({"event": "metrics", "step": int(step), **normalise_metrics(values)})

    def final(self, values: dict[str, Any]) -> dict[str, Any]:
        """Print the final line; return the metrics as printed (normalised names)."""
        metrics = normalise_metrics(values)
        self._write({"event": "final", "step": self.last_step, **metrics})
        return metrics

    def error(self, message: str, kind: str) -> None:
        self._write({"event": "error", "kind": kind, "message": message})


def parse_event(line: str) -> dict[str, Any] | None:
    """The metrics protocol line in ``line``, or None for log text."""
    line = line.strip()
    if not line.startswith(METRIC_PREFIX):
        return None
    try:
        payload = json.loads(line)
    except json.JSONDecodeError:
        return None
    return payload if isinstance(payload, dict) and "event" in payload else None


def trainer_callback(emitter: Emitter, *, drop: tuple[str, ...] = ()):
    """A transformers ``TrainerCallback`` that forwards every log (train and eval) to ``emitter``,
    less the keys in ``drop`` (figures the runner computes and emits itself)."""
    from transformers import TrainerCallback

    left_out = {"total_flos", *drop}

    class _MetricsCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                values = {k: v for k, v in logs.items() if k not in left_out}
                if values:
                    emitter.metrics(state.global_step, values)

    return _MetricsCallback()


# --- failures and cancellation ---------------------------------------------------------------


def install_cancel_handler() -> None:
    """SIGTERM (cancel) raises ``Cancelled`` in the main thread, so cleanup runs and no half model stays."""

    def _handler(signum, frame):
        raise Cancelled("The run was cancelled.")

    with contextlib.suppress(ValueError):  # not the main thread (tests calling runners directly)
        signal.signal(signal.SIGTERM, _handler)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


def describe_failure(exc: BaseException) -> tuple[str, str]:
    """(kind, message) for the run page."""
    from training.runners.configs import ConfigError

    if isinstance(exc, RunnerError):
        return exc.kind, exc.message
    if isinstance(exc, ConfigError):  # an option the runner refuses once it knows its processes
        return "config", f"Bad config: {exc}"
    if isinstance(exc, KeyboardInterrupt):
        return "cancelled", "The run was interrupted."
    name = type(exc).__name__
    text = str(exc)
    if name == "OutOfMemoryError" or "out of memory" in text.lower() or isinstance(exc, MemoryError):
        return "oom", (
            "Out of memory: lower per_device_train_batch_size or max_length, raise gradient_accumulation_steps, "
            f"enable gradient_checkpointing or LoRA, or use a bigger accelerator. ({first_line(exc)})"
        )
    if isinstance(exc, IndexError) and "index out of range" in text:
        return (
            "model",
            f"Token ids outside the model's vocabulary: tokenizer/model mismatch? ({first_line(exc)})",
        )
    return "error", f"{name}: {first_line(exc)}"


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self.start, 3)
