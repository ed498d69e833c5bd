"""What the runners share: reading dataset files, tokenising pairs, streaming metrics, writing
outputs atomically, turning failures into clear messages.

The runners are plain Python (no Django): they read a dataset FILE and write a model directory, so
they run the same from a Celery worker, ``manage.py train`` or a cluster's ``accelerate launch``.

Metrics protocol (stdout, one JSON object per line, main process only)::

    {"event": "metrics", "step": 10, "loss": 0.61, "accuracy": 0.7, ...}
    {"event": "final", "step": 120, "eval_accuracy": 0.66, ..., "output_dir": "..."}   # last line on success
    {"event": "error", "message": "...", "kind": "data"}                                 # on failure (exit 1)

Everything else on stdout/stderr is log text.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import os
import random
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import formatting
from core.formatting import is_conversational
from core.hh import HHFormatError, split_pair

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


def trainer_callback(emitter: Emitter):
    """A transformers ``TrainerCallback`` that forwards every log (train and eval) to ``emitter``."""
    from transformers import TrainerCallback

    class _MetricsCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                values = {k: v for k, v in logs.items() if k not in ("total_flos",)}
                emitter.metrics(state.global_step, values)

    return _MetricsCallback()


# --- outputs ------------------------------------------------------------------------------------


def launcher_pid() -> int:
    """One id shared by every process of a run: the ``accelerate launch`` parent's pid when launched
    by it (or PREFHUB_LAUNCHER_PID), else our own."""
    if os.environ.get("PREFHUB_LAUNCHER_PID"):
        return int(os.environ["PREFHUB_LAUNCHER_PID"])
    if "LOCAL_RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return os.getppid()
    return os.getpid()


@contextlib.contextmanager
def atomic_output(output_dir: str, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield ``<output_dir>.tmp-<pid>`` to train into; rename it to ``output_dir`` on success, delete it
    on any failure (including cancellation), so ``output_dir`` only ever holds a complete model."""
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise RunnerError(f"{out} already exists; choose another output directory.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp-{launcher_pid()}")
    if is_main_process() and tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        yield tmp
    except BaseException:
        if is_main_process():
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    if is_main_process():
        if out.exists():
            old = out.with_name(f"{out.name}.old-{os.getpid()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)


def remove_stale_tmp(output_dir: str) -> list[str]:
    """Delete ``<output_dir>.tmp-*`` left by a killed run (SIGKILL skips the cleanup)."""
    out = Path(output_dir)
    removed = []
    if out.parent.is_dir():
        for p in out.parent.glob(f"{out.name}.tmp-*"):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(str(p))
    return removed


def install_cancel_handler() -> None:
    """SIGTERM (cancel) raises ``Cancelled`` in the main thread, so cleanup runs and no half model stays."""

    def _handler(signum, frame):
        raise Cancelled("The run was cancelled.")

    with contextlib.suppress(ValueError):  # not the main thread (tests calling runners directly)
        signal.signal(signal.SIGTERM, _handler)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")


# --- datasets -----------------------------------------------------------------------------------


def read_rows(path: str) -> list[dict[str, Any]]:
    """Rows of a JSONL (plain or gzip) or Parquet file."""
    p = Path(path)
    if not path or not p.is_file():
        raise DataError(f"Dataset file not found: {path or '(none given)'}")
    if p.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(p).to_pylist()
        except Exception as exc:
            raise DataError(f"{p.name} is not a readable Parquet file: {exc}") from exc
    opener = gzip.open if p.suffix == ".gz" else open
    rows = []
    with opener(p, "rt", encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{p.name} line {number}: not valid JSON ({exc.msg}).") from exc
            if not isinstance(obj, dict):
                raise DataError(f"{p.name} line {number}: each line must be a JSON object.")
            rows.append(obj)
    return rows


def _pairs_from_unpaired(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """KTO rows (prompt, completion, label) -> pairs: each good completion against each bad one of the
    same prompt (at most 4 per prompt)."""
    labels = {bool(r.get("label")) for r in rows}
    if len(labels) < 2:
        which = "desirable" if labels == {True} else "undesirable"
        raise DataError(
            f"Single-class data: every completion is labelled {which}; there is nothing to compare."
        )
    by_prompt: dict[str, dict[str, Any]] = {}
    for r in rows:
        key = json.dumps(r["prompt"], sort_keys=True)
        slot = by_prompt.setdefault(key, {"prompt": r["prompt"], "good": [], "bad": []})
        slot["good" if r.get("label") else "bad"].append(r["completion"])
    pairs = []
    for slot in by_prompt.values():
        combos = [(g, b) for g in slot["good"] for b in slot["bad"]][:4]
        pairs.extend({"prompt": slot["prompt"], "chosen": g, "rejected": b} for g, b in combos)
    return pairs


@dataclass
class PreferenceData:
    rows: list[dict[str, Any]]
    conversational: bool
    has_margin: bool
    dropped_identical: int = 0
    dropped_ties: int = 0  # tie / both-bad rows (``flag`` set): never trained as a preference


def load_preferences(path: str) -> PreferenceData:
    """Preference pairs from a TRL file: standard, conversational, implicit-prompt (HH-RLHF transcripts,
    split by ``core.hh``) or unpaired (KTO, paired up per prompt). Pairs whose chosen equals rejected
    teach nothing and are dropped; rows with a ``flag`` (a tie or "both bad" verdict, exported with
    ``ties=keep``) are not preferences and are dropped too, with their count logged and reported
    (``dropped_tie_pairs``); no pair left is an error (empty or single-class export)."""
    raw = read_rows(path)
    if not raw:
        raise DataError(f"The dataset {Path(path).name} is empty: the export has no comparisons yet.")
    first = raw[0]
    if {"prompt", "completion", "label"} <= set(first):
        raw = _pairs_from_unpaired(raw)
    elif not {"chosen", "rejected"} <= set(first):
        raise DataError(
            f"{Path(path).name} is not a TRL preference file: rows need prompt/chosen/rejected "
            f"(found {', '.join(sorted(first)) or 'no columns'})."
        )
    rows: list[dict[str, Any]] = []
    dropped = ties = 0
    for number, r in enumerate(raw, start=1):
        if r.get("flag"):
            ties += 1
            continue
        prompt, chosen, rejected = r.get("prompt"), r.get("chosen"), r.get("rejected")
        if prompt is None:
            try:
                pair = split_pair(chosen, rejected)
            except HHFormatError as exc:
                raise DataError(
                    f"Row {number}: rows without a prompt must be HH-RLHF transcripts "
                    f"('\\n\\nHuman: ...'); {exc.field or 'row'} {exc.message}."
                ) from None
            prompt = pair.prompt
            chosen = [{"role": "assistant", "content": pair.chosen}]
            rejected = [{"role": "assistant", "content": pair.rejected}]
        if chosen is None or rejected is None:
            raise DataError("Every row needs both chosen and rejected.")
        if chosen == rejected:
            dropped += 1
            continue
        row = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
        if r.get("margin") is not None:
            row["margin"] = float(r["margin"])
        rows.append(row)
    if ties:
        print(
            f"Dropped {ties} tie/both-bad row(s) of {Path(path).name}: a tie is never trained as a preference.",
            file=sys.stderr,
        )
    if not rows:
        if ties:
            raise DataError(
                f"No usable preference pairs in {Path(path).name}: {ties} tie/both-bad rows (never trained as "
                f"preferences) and {dropped} rows with identical chosen and rejected responses."
            )
        raise DataError(
            f"No usable preference pairs in {Path(path).name}: all {dropped} rows have identical chosen and rejected "
            "responses (single-class data)."
        )
    conv = is_conversational(rows[0]["prompt"]) or is_conversational(rows[0]["chosen"])
    if conv:
        for r in rows:
            for key in ("chosen", "rejected"):
                if isinstance(r[key], str):
                    r[key] = [{"role": "assistant", "content": r[key]}]
            if isinstance(r["prompt"], str):
                r["prompt"] = [{"role": "user", "content": r["prompt"]}]
    has_margin = any("margin" in r for r in rows)
    if has_margin:
        for r in rows:
            r.setdefault("margin", 0.0)
    return PreferenceData(
        rows=rows, conversational=conv, has_margin=has_margin, dropped_identical=dropped, dropped_ties=ties
    )


def split_eval(
    rows: list[dict[str, Any]],
    *,
    eval_rows: list[dict[str, Any]] | None,
    fraction: float,
    seed: int,
    limit: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, eval): the given eval rows, or a deterministic ``fraction`` of ``rows`` held out."""
    if eval_rows is not None:
        return rows, eval_rows[:limit]
    if fraction <= 0 or len(rows) < 4:
        return rows, []
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_eval = max(1, round(len(rows) * fraction))
    held = set(order[:n_eval])
    return [r for i, r in enumerate(rows) if i not in held], [rows[i] for i in order[:n_eval]][:limit]


def load_pair_splits(cfg) -> tuple[PreferenceData, list[dict[str, Any]], list[dict[str, Any]]]:
    """(all data, train rows, held-out rows) of a preference run's config."""
    data = load_preferences(cfg.dataset_path)
    eval_rows = load_preferences(cfg.eval_dataset_path).rows if cfg.eval_dataset_path else None
    train_rows, eval_rows = split_eval(
        data.rows, eval_rows=eval_rows, fraction=cfg.eval_fraction, seed=cfg.seed, limit=cfg.max_eval_rows
    )
    return data, train_rows, eval_rows


def load_prompts(path: str) -> list[Any]:
    """Distinct prompts (strings or message lists) of a file of prompt rows or preference rows."""
    raw = read_rows(path)
    if raw and "prompt" not in raw[0] and "messages" not in raw[0]:
        raw = load_preferences(path).rows
    seen: set[str] = set()
    prompts = []
    for r in raw:
        p = r.get("prompt", r.get("messages"))
        if is_conversational(p) and p[-1].get("role") == "assistant":
            p = p[:-1]  # a conversation row: the prompt is everything before the last reply
        if not p:
            continue
        key = json.dumps(p, sort_keys=True)
        if key not in seen:
            seen.add(key)
            prompts.append(p)
    if not prompts:
        raise DataError(f"No prompts in {Path(path).name}.")
    return prompts


# --- tokenisation -------------------------------------------------------------------------------
# The text and ids of a (prompt, response) are defined once, in ``core.formatting``; these wrappers
# turn its errors into the runners' ``ModelError``.


def _formatting(fn, *args):
    from core.formatting import FormattingError

    try:
        return fn(*args)
    except FormattingError as exc:
        raise ModelError(str(exc)) from exc


def prompt_ids(tokenizer, prompt: Any) -> list[int]:
    return _formatting(formatting.prompt_ids, tokenizer, prompt)


def completion_ids(tokenizer, prompt: Any, completion: Any) -> list[int]:
    """Token ids of ``completion`` after ``prompt``, ending with the end token."""
    return _formatting(formatting.completion_ids, tokenizer, prompt, completion)


def encode(tokenizer, prompt: Any, completion: Any, max_length: int) -> list[int]:
    """prompt + completion ids within ``max_length`` (``core.formatting.reward_input_ids``): what a
    reward model reads, in training and in scoring alike."""
    return _formatting(formatting.reward_input_ids, tokenizer, prompt, completion, max_length)


def tokenize_pairs(
    tokenizer, rows: list[dict[str, Any]], max_length: int, *, margin: bool
) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        item = {
            "chosen_ids": encode(tokenizer, r["prompt"], r["chosen"], max_length),
            "rejected_ids": encode(tokenizer, r["prompt"], r["rejected"], max_length),
        }
        if margin:
            item["margin"] = float(r.get("margin", 0.0))
        out.append(item)
    return out


# --- models -------------------------------------------------------------------------------------


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"Cannot load a tokenizer from {path!r}: {first_line(exc)}") from exc
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def model_config(path: str):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"Cannot load a model from {path!r}: {first_line(exc)}") from exc


def require_causal_lm(path: str, role: str = "policy") -> None:
    """Refuse a base model that cannot generate (a reward/classifier checkpoint, an encoder)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    cfg = model_config(path)
    archs = list(getattr(cfg, "architectures", None) or [])
    if archs and not any(
        a.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")) for a in archs
    ):
        raise ModelError(
            f"The {role} model {path!r} is not a causal language model (architecture {', '.join(archs)}); "
            "DPO and PPO train a model that generates text."
        )
    if not archs and cfg.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ModelError(f"The {role} model {path!r} ({cfg.model_type}) is not a causal language model.")


def check_tokenizer_fits(tokenizer, model, path: str) -> None:
    """A tokenizer with ids beyond the model's embedding table is the wrong tokenizer for it."""
    emb = model.get_input_embeddings()
    n = emb.num_embeddings if emb is not None else getattr(model.config, "vocab_size", None)
    if n is not None and len(tokenizer) > n:
        raise ModelError(
            f"Tokenizer/model mismatch for {path!r}: the tokenizer has {len(tokenizer)} tokens but the model's "
            f"embedding table only {n}."
        )


def resolve_use_cpu(value: bool | None) -> bool:
    if value is not None:
        return value
    import torch

    return not torch.cuda.is_available()


def resolve_bf16(value: bool | None, use_cpu: bool) -> bool:
    if value is not None:
        return value
    if use_cpu:
        return False
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


def describe_failure(exc: BaseException) -> tuple[str, str]:
    """(kind, message) for the run page."""
    if isinstance(exc, RunnerError):
        return exc.kind, exc.message
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


def fit_prompt(tokenizer, row: dict[str, Any], max_length: int) -> dict[str, Any]:
    """A copy of ``row`` whose prompt leaves room for its longer reply within ``max_length``: earliest
    turns (conversational) or leading tokens (plain text) go first. Used where TRL itself truncates
    by keeping the start, which would cut the reply."""
    prompt = row["prompt"]
    longest = max(len(completion_ids(tokenizer, prompt, row[k])) for k in ("chosen", "rejected") if k in row)
    budget = max(max_length - longest, 1)
    if is_conversational(prompt):
        turns = list(prompt)
        while len(turns) > 1 and len(prompt_ids(tokenizer, turns)) > budget:
            turns = turns[1:]
            while len(turns) > 1 and turns[0].get("role") == "assistant":
                turns = turns[1:]
        return {**row, "prompt": turns}
    ids = prompt_ids(tokenizer, prompt)
    if len(ids) <= budget:
        return row
    return {**row, "prompt": tokenizer.decode(ids[-budget:])}
