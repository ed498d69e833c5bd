"""Training runs: create (validated), execute as a subprocess, cancel, register the result.

How a run executes
------------------
``run_create`` validates the request (data, base model, reward model, options against the runner's
dataclass) and, on commit, enqueues ``training.tasks.runs.run_execute`` on the ``training`` queue.
The worker calls ``run_execute``, which

* claims the run (``queued`` -> ``running`` by a conditional UPDATE: a redelivered message finds it
  taken and does nothing);
* writes the runner's JSON config beside the output and starts
  ``accelerate launch -m training.runners KIND --config FILE`` in its own process group, so a crash
  or an out-of-memory kill of the trainer never takes the worker down, and a run of any length
  never holds a broker message open (the task is acknowledged when it starts);
* reads the subprocess's output line by line: everything goes to the run's log file, metric lines
  become ``MetricPoint`` rows and ``run.metrics["latest"]`` (flushed every couple of seconds);
* checks ``cancel_requested`` while it waits: SIGTERM to the process group (the runner deletes its
  temporary output and exits), SIGKILL after ``PREFHUB_TRAINING_CANCEL_GRACE_S`` seconds;
* finishes the run: ``done`` with ``run.metrics["final"]`` when the runner printed its final line and
  the output directory exists, ``cancelled``, or ``failed`` with the runner's error message and the
  tail of the log. Temporary output left by a killed process is removed.

Settings (all optional): ``PREFHUB_TRAINING_LAUNCHER`` ("accelerate" or "python"),
``PREFHUB_TRAINING_NUM_PROCESSES``, ``PREFHUB_ACCELERATE_CONFIG`` (DeepSpeed/FSDP/multi-node),
``PREFHUB_TRAINING_CANCEL_GRACE_S``. A run's ``config["launch"]`` may set ``num_processes`` and
``accelerate_config`` for that run. Paths a user names (dataset, base/reward model, accelerate
config) follow ``core.paths`` (``restrict_dataset_path``; the CLI passes False).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify

from annotate.errors import Conflict, InvalidInput, NotFound
from annotate.models import Project, Prompt
from core import jobs
from core.audit import audit_create, audit_record
from core.jobs import job_finish
from core.outbox import outbox_enqueue
from core.paths import CONFIG, DATASET, usable_model, user_path
from generation.services import endpoint_create
from training.models import Export, ExportFormat, ExportState, MetricPoint, RunKind, RunState, TrainingRun
from training.runners.configs import ConfigError, config_fields, config_for, documented_defaults
from training.runners.launch import command
from training.runners.models import checkpoint_processes, checkpoints_dir, remove_stale_tmp, resume_checkpoint
from training.runners.protocol import parse_event
from training.selectors import run_resume_point, run_resumption, run_without_checkpoint_hint

log = logging.getLogger(__name__)

POLICY_KINDS = (RunKind.DPO, RunKind.PPO, RunKind.RLOO, RunKind.GRPO)
RL_KINDS = (RunKind.PPO, RunKind.RLOO, RunKind.GRPO)
FINAL_STATES = jobs.FINAL_STATES
# Options the platform fills in; a run's config may not set them.
PLATFORM_KEYS = frozenset(
    {
        "base_model",
        "dataset_path",
        "eval_dataset_path",
        "output_dir",
        "metrics_file",
        "reward_model",
        "overwrite_output_dir",
        "resume_from",  # resuming a run sets it (run_resume)
    }
)

TRAINABLE_FORMATS = (
    ExportFormat.TRL,
    ExportFormat.TRL_CONVERSATIONAL,
    ExportFormat.TRL_UNPAIRED,
    ExportFormat.HH_RLHF,
)
LOG_TAIL_LINES = 40
FLUSH_SECONDS = 2.0


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, os.environ.get(name, default))


def runs_root(project: Project) -> Path:
    return Path(settings.PREFHUB_DATA_DIR) / "runs" / project.slug


def _check_dataset_path(path: str, *, restrict: bool, project: Project) -> str:
    """Restricted (pages, API): the path rule of ``core.paths`` (this project's exports and runs,
    shared dataset folders; decided before the file system is asked, so no oracle)."""
    if len(path) > 1000 or "\x00" in path:
        raise InvalidInput("Not a usable file path.", field="dataset_path")
    if Path(path).suffix not in (".jsonl", ".json", ".gz", ".parquet"):
        raise InvalidInput("The dataset must be a .jsonl (.gz) or .parquet file.", field="dataset_path")
    if restrict:
        return user_path(path, project=project, kind=DATASET, field="dataset_path")
    try:
        resolved = Path(path).expanduser().resolve()
        if not resolved.is_file():
            raise InvalidInput(f"No dataset file at {path}.", field="dataset_path")
    except OSError as exc:
        raise InvalidInput(f"Not a usable file path ({exc.strerror}).", field="dataset_path") from None
    return str(resolved)


def export_dataset_files(export: Export) -> tuple[str, str]:
    """(train file, held-out file or "") of a finished export, from its manifest."""
    if export.state == ExportState.FAILED:
        raise InvalidInput("That export failed; it has no files to train on: export again.", field="export")
    if export.state != ExportState.DONE or not export.path:
        raise InvalidInput("That export is not finished yet.", field="export")
    if export.format not in TRAINABLE_FORMATS:
        raise InvalidInput(
            f"An export in the {export.get_format_display()} format cannot be trained on: use a TRL "
            "preference export.",
            field="export",
        )
    folder = Path(export.path)
    files = (export.manifest or {}).get("files") or {}
    train = files.get("train", {}).get("path") or f"train.{export.file_type}"
    test = files.get("test", {}).get("path", "")
    train_path = folder / train
    if not train_path.is_file():
        raise InvalidInput("The export's files are missing.", field="export")
    if files.get("train", {}).get("rows") == 0:
        raise InvalidInput("That export is empty: it has no comparisons to train on.", field="export")
    test_path = folder / test if test else None
    return str(train_path), str(test_path) if test_path and test_path.is_file() else ""


def run_option_defaults(kind: str) -> dict[str, Any]:
    """The options a run of ``kind`` may set in its config, with their defaults (the launch form
    shows them): the runner's, less those the platform fills in (``PLATFORM_KEYS``), which a
    config may not set."""
    return {k: v for k, v in documented_defaults(kind).items() if k not in PLATFORM_KEYS}


#: The most processes one run may launch (a run's ``config.launch.num_processes``, ``train --num-processes``).
MAX_NUM_PROCESSES = 64


def _validate_config(kind: str, config: dict | None) -> dict:
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise InvalidInput("config must be a JSON object.", field="config")
    config = dict(config)
    launch = config.pop("launch", None)
    reserved = sorted(PLATFORM_KEYS & set(config))
    if reserved:
        raise InvalidInput(
            f"These are set by the platform, not in config: {', '.join(reserved)}.", field="config"
        )
    # Everything the runner will check, now rather than in the worker: the paths the platform fills
    # in are checked elsewhere, so placeholders stand in for them here (they are not stored).
    placeholders = {
        name: "-" for name in ("base_model", "output_dir", "reward_model") if name in config_fields(kind)
    }
    try:
        config_for(kind, {**config, **placeholders})
    except ConfigError as exc:
        raise InvalidInput(str(exc), field="config") from exc
    if launch is not None:
        if not isinstance(launch, dict) or set(launch) - {"num_processes", "accelerate_config"}:
            raise InvalidInput("config.launch takes num_processes and accelerate_config.", field="config")
        n = launch.get("num_processes", 1)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_NUM_PROCESSES:
            raise InvalidInput(
                f"config.launch.num_processes must be between 1 and {MAX_NUM_PROCESSES}.", field="config"
            )
        config["launch"] = launch
    return config


@transaction.atomic
def run_create(
    *,
    project: Project,
    kind: str,
    base_model: str = "",
    export: Export | None = None,
    dataset_path: str = "",
    base_run: TrainingRun | None = None,
    reward_run: TrainingRun | None = None,
    reward_model: str = "",
    config: dict | None = None,
    actor: AbstractBaseUser | None = None,
    enqueue: bool = True,
    restrict_dataset_path: bool = True,
) -> TrainingRun:
    """Validate and create a run; on commit, enqueue it on the training queue.

    The base model is ``base_model`` (a HF name or local path) or ``base_run``'s output (not both); a named
    model (and ``reward_model``) must be loadable now (``core.paths.usable_model``: a model folder
    the user may name, or a Hub name in the local cache), not 80 s later in the worker. Data: an
    export of the project (its train file; its test file is the held-out set) or a dataset file
    (under the data folder unless ``restrict_dataset_path=False``, as for the CLI). PPO/RLOO/GRPO
    need a reward model (``reward_run``, a finished reward run, or ``reward_model``, a path) and take
    their prompts from the data, or from the project's prompts when no data is given.
    """
    if kind not in RunKind.values:
        raise InvalidInput(f"kind must be one of {', '.join(RunKind.values)}.", field="kind")
    if export is not None and dataset_path:
        raise InvalidInput("Give an export or a dataset file, not both.", field="dataset_path")
    if export is not None:
        if export.project_id != project.pk:
            raise InvalidInput("That export belongs to another project.", field="export")
        export_dataset_files(export)
    elif dataset_path:
        dataset_path = _check_dataset_path(dataset_path, restrict=restrict_dataset_path, project=project)
    elif kind not in RL_KINDS:
        raise InvalidInput("Choose an export (or a dataset file) to train on.", field="export")

    base_model = (base_model or "").strip()
    if base_run is not None and base_model and base_model != base_run.output_path:
        raise InvalidInput(
            f"Give a base model or a base run, not both: base run #{base_run.pk} starts from its own "
            f"model, not {base_model!r}.",
            field="base_model",
        )
    if base_run is not None:
        if base_run.project_id != project.pk:
            raise InvalidInput("The base run belongs to another project.", field="base_run")
        if base_run.state != RunState.DONE or not base_run.output_path:
            raise InvalidInput("The base run has not finished.", field="base_run")
        if kind in POLICY_KINDS and base_run.kind == RunKind.REWARD:
            raise InvalidInput(
                "A reward model cannot be the policy: choose a DPO/PPO/RLOO/GRPO run.", field="base_run"
            )
        base_model = base_run.output_path
    if not base_model:
        raise InvalidInput(
            "Give a base model (a Hugging Face name or a local path) or a base run.", field="base_model"
        )
    if len(base_model) > 500:
        raise InvalidInput("The base model name is too long.", field="base_model")
    if base_run is None:
        base_model = usable_model(
            base_model, project=project, field="base_model", restrict=restrict_dataset_path
        )

    cfg = _validate_config(kind, config)
    accelerate_config = (cfg.get("launch") or {}).get("accelerate_config")
    if accelerate_config and restrict_dataset_path:
        cfg["launch"]["accelerate_config"] = user_path(
            str(accelerate_config), project=project, kind=CONFIG, field="config"
        )
    if kind in RL_KINDS:
        if reward_run is not None:
            if reward_run.project_id != project.pk:
                raise InvalidInput("The reward run belongs to another project.", field="reward_run")
            if reward_run.kind != RunKind.REWARD or reward_run.state != RunState.DONE:
                raise InvalidInput("The reward model must be a finished reward run.", field="reward_run")
        elif not reward_model:
            raise InvalidInput(
                f"{kind.upper()} needs a reward model: choose a finished reward run.", field="reward_run"
            )
        else:
            cfg["reward_model"] = usable_model(
                reward_model,
                project=project,
                field="reward_model",
                restrict=restrict_dataset_path,
                reward=True,
            )
    elif reward_run is not None or reward_model:
        raise InvalidInput("Only PPO, RLOO and GRPO use a reward model.", field="reward_run")
    if (
        kind in RL_KINDS
        and export is None
        and not dataset_path
        and not Prompt.objects.filter(project=project).exists()
    ):
        raise InvalidInput(
            "This project has no prompts to train on; choose an export or a dataset.", field="export"
        )

    run = audit_create(
        TrainingRun,
        actor=actor,
        action="training.run_create",
        details={"kind": kind, "base_model": base_model, "export": export.version if export else None},
        project=project,
        kind=kind,
        export=export,
        dataset_path=dataset_path,
        base_model=base_model,
        base_run=base_run,
        reward_run=reward_run,
        config=cfg,
    )
    return _place_and_queue(run, enqueue=enqueue)


#: What a run writes beside its output folder ``<name>``: a name is taken when any of them exists.
RUN_FILE_SUFFIXES = ("", ".log", ".checkpoints", ".prompts.jsonl", ".config.json")


def _free_run_name(root: Path, pk: int) -> str:
    """``run-<pk>``, or ``run-<pk>-2``, ``-3``... when files of that name are there already: the
    runs of another database sharing this data folder, or of one started again from empty (its ids
    start again at 1). Their output, log, checkpoints and prompts are never taken as this run's."""
    name, n = f"run-{pk}", 1
    while any((root / f"{name}{suffix}").exists() for suffix in RUN_FILE_SUFFIXES) or any(
        root.glob(f"{name}.tmp-*")
    ):
        n += 1
        name = f"run-{pk}-{n}"
    return name


def _place_and_queue(run: TrainingRun, *, enqueue: bool = True) -> TrainingRun:
    """Name a new run's output and log after it (``_free_run_name``) and, on commit, queue it on the
    training queue."""
    root = runs_root(run.project)
    name = _free_run_name(root, run.pk)
    run.output_path = str(root / name)
    run.log_path = str(root / f"{name}.log")
    run.save(update_fields=["output_path", "log_path"])
    if enqueue:
        outbox_enqueue("training.tasks.runs.run_execute", run.pk)
    return run


@transaction.atomic
def run_resume(*, run: TrainingRun, actor: AbstractBaseUser | None = None) -> TrainingRun:
    """A new run that continues a failed or cancelled ``run`` from its newest checkpoint: the same
    kind, model, data and options, queued now; the trainer restores weights, optimiser, scheduler,
    RNG and data position, and trains the steps left. The old run stays as it ended (a job ends
    once); its checkpoints are deleted when the new run finishes."""
    run = TrainingRun.objects.select_for_update().select_related("project").get(pk=run.pk)
    if run.state not in (RunState.FAILED, RunState.CANCELLED):
        raise Conflict(
            f"Only a failed or cancelled run can be resumed; this one is {run.get_state_display().lower()}."
        )
    taken = run_resumption(run=run)
    if taken is not None:
        how = "already resumed" if taken.state == RunState.DONE else "is already resuming"
        raise Conflict(f"Run #{taken.pk} {how} this run.")
    step = run_resume_point(run=run)
    if step is None:
        raise Conflict(
            "This run left no checkpoint to resume from (runs write them when their options set "
            f"save_steps). {run_without_checkpoint_hint(run=run)}"
        )
    try:
        _check_inputs_still_there(run)
    except InvalidInput as exc:
        raise Conflict(f"This run cannot be resumed: its {exc.field}: {exc.message}") from None
    resumed = audit_create(
        TrainingRun,
        actor=actor,
        action="training.run_resume",
        details={"resumed_from": run.pk, "step": step},
        project=run.project,
        kind=run.kind,
        export=run.export,
        dataset_path=run.dataset_path,
        base_model=run.base_model,
        base_run=run.base_run,
        reward_run=run.reward_run,
        config=_resume_config(run),
        resumed_from=run,
    )
    return _place_and_queue(resumed)


def _resume_config(run: TrainingRun) -> dict[str, Any]:
    """``run``'s options for the run resuming it: as they were, except that a run that named no
    number of processes (it ran with its worker's PREFHUB_TRAINING_NUM_PROCESSES) gets the number
    that wrote its checkpoint, the only one that can resume it (another worker's default may
    differ)."""
    config = dict(run.config or {})
    launch = dict(config.get("launch") or {})
    checkpoint = resume_checkpoint(str(checkpoints_dir(run.output_path)))
    written = checkpoint_processes(checkpoint) if checkpoint is not None else None
    if written is not None and "num_processes" not in launch:
        config["launch"] = {**launch, "num_processes": written}
    return config


def _check_inputs_still_there(run: TrainingRun) -> None:
    """InvalidInput (naming the field) when what ``run`` trained from is gone: its export's files or
    dataset file (for an RL run on the project's prompts: the prompts file it started with), its
    base model, its reward model. The paths were checked when it was created; a resumed run must
    find them again, or it would be queued only to fail in the worker."""
    if run.export_id:
        export_dataset_files(run.export)
    elif run.dataset_path:
        _check_dataset_path(run.dataset_path, restrict=False, project=run.project)
    elif not _prompts_file(run).is_file():
        raise InvalidInput(f"No prompts file at {_prompts_file(run)}.", field="dataset_path")
    usable_model(run.base_model, project=run.project, field="base_model", restrict=False)
    if run.kind in RL_KINDS:
        reward = run.reward_run.output_path if run.reward_run_id else (run.config or {}).get("reward_model")
        if not reward:
            raise InvalidInput("The reward run it was scored by is gone.", field="reward_model")
        usable_model(reward, project=run.project, field="reward_model", restrict=False, reward=True)


@transaction.atomic
def run_cancel(*, run: TrainingRun, actor: AbstractBaseUser | None = None) -> TrainingRun:
    """A queued run is cancelled at once; a running one is asked to stop (the worker stops it)."""
    run = TrainingRun.objects.select_for_update().get(pk=run.pk)
    audit_record(actor=actor, project=run.project, action="training.run_cancel", target=run)
    if run.state in FINAL_STATES:
        raise Conflict(f"This run is already {run.get_state_display().lower()}.")
    if run.state == RunState.QUEUED:
        job_finish(run, state=RunState.CANCELLED, cancel_requested=True)
    elif not run.cancel_requested:
        run.cancel_requested = True
        run.save(update_fields=["cancel_requested"])
    return run


def run_register_endpoint(*, run: TrainingRun, name: str = "", actor: AbstractBaseUser | None = None) -> Any:
    """Register a finished policy run's model as a ``transformers`` generation endpoint of its
    project (idempotent: the same endpoint the second time), so a generation job can sample from it.
    ``run_register`` says whether the endpoint was created by this call."""
    endpoint, _created = run_register(run=run, name=name, actor=actor)
    return endpoint


def _has_chat_template(folder: Path) -> bool:
    """Whether the saved model in ``folder`` has a chat template (what the transformers backend
    formats conversations with, ``generation.backends.base.require_chat_template``), read from its
    files without loading it: ``chat_template.jinja``/``chat_template.json`` (transformers 5 saves
    the first) or ``tokenizer_config.json``'s ``chat_template``. A folder without a readable
    ``tokenizer_config.json`` cannot tell and passes (the backend says what is wrong)."""
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    return not isinstance(config, dict) or bool(config.get("chat_template"))


@transaction.atomic
def run_register(
    *, run: TrainingRun, name: str = "", actor: AbstractBaseUser | None = None
) -> tuple[Any, bool]:
    """``run_register_endpoint`` returning ``(endpoint, created)``.

    A run registered already answers its endpoint (``created`` False) when ``name`` is empty or
    names that endpoint; another name is a ``Conflict`` (an endpoint is not renamed, and a second
    one for the same model is not made). A reward model is ``InvalidInput``; a run that is not done
    is a ``Conflict`` saying why (still queued or running; cancelled or failed: no model)."""
    run = (
        TrainingRun.objects.select_for_update(of=("self",))
        .select_related("project", "registered_endpoint")
        .get(pk=run.pk)
    )
    wanted = slugify(name)[:100] if name else ""
    if name.strip() and not wanted:  # else the default name stands in for one the user gave
        raise InvalidInput(
            f"The endpoint name {name[:100]!r} has no letters or digits to make a name of "
            "(it becomes a slug: a-z, 0-9, - and _).",
            field="name",
        )
    if run.registered_endpoint is not None:
        endpoint = run.registered_endpoint
        if wanted and wanted != endpoint.name:
            raise Conflict(
                f"This run is already registered as the generation endpoint {endpoint.name!r}; it was "
                f"not registered again as {wanted!r} (an endpoint keeps its name). Use "
                f"{endpoint.name!r}, or register without a name to get it back.",
                field="name",
            )
        return endpoint, False
    if run.kind not in POLICY_KINDS:
        raise InvalidInput("Only a policy (DPO, PPO, RLOO, GRPO) can generate; a reward model cannot.")
    if run.state in (RunState.CANCELLED, RunState.FAILED):
        how = "was cancelled" if run.state == RunState.CANCELLED else "failed"
        raise Conflict(f"This run {how}; it has no model to register.")
    if run.state != RunState.DONE:
        raise Conflict("The run has not finished yet; register it once it is done.")
    if not run.output_path or not (Path(run.output_path) / "config.json").is_file():
        raise NotFound("The run's model files are missing.")
    if not _has_chat_template(Path(run.output_path)):
        raise InvalidInput(
            "The run's model has no chat template (its base model has none), so a generation endpoint "
            "cannot format conversations for it: train a policy from an instruction-tuned model, or add "
            "a chat_template to the run's tokenizer_config.json, then register it."
        )
    name = wanted or slugify(f"{run.project.slug}-{run.kind}-run-{run.pk}")[:100]
    endpoint = endpoint_create(
        name=name, backend="transformers", model=run.output_path, project=run.project, actor=actor
    )
    run.registered_endpoint = endpoint
    audit_record(
        actor=actor, project=run.project, action="training.run_register", target=run,
        details={"endpoint": endpoint.name},
    )  # fmt: skip
    run.save(update_fields=["registered_endpoint"])
    return endpoint, True


# --- execution ----------------------------------------------------------------------------------


def _claim(run_id: int) -> bool:
    now = timezone.now()
    return bool(
        TrainingRun.objects.filter(pk=run_id, state=RunState.QUEUED, cancel_requested=False).update(
            state=RunState.RUNNING, started_at=now
        )
    )


def _finish(run: TrainingRun, state: str, *, error: str = "", final: dict | None = None) -> None:
    metrics = dict(run.metrics or {})
    if final is not None:
        metrics["final"] = final
    job_finish(run, state=state, error=error, pid=None, metrics=metrics)


def _write_prompts(run: TrainingRun, path: Path) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for messages in (
            Prompt.objects.filter(project=run.project).values_list("messages", flat=True).iterator()
        ):
            fh.write(json.dumps({"prompt": messages}, ensure_ascii=False) + "\n")


def _first_of_chain(run: TrainingRun) -> TrainingRun:
    """The run that ``run`` resumes (through any runs that resumed it in turn): the one that started
    the training ``run`` continues."""
    while run.resumed_from_id:
        run = run.resumed_from
    return run


def _prompts_file(run: TrainingRun) -> Path:
    """Where the project's prompts are written for an RL run without data: one file per chain of
    resumed runs, the first run's, so that a resumed trainer's data position points into the data
    it was trained on (the project's prompts may have changed since)."""
    first = Path(_first_of_chain(run).output_path)
    return first.with_name(f"{first.name}.prompts.jsonl")


def runner_config(run: TrainingRun) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the runner's JSON config, the launch options) of ``run``; writes a prompts file for an RL run
    without data."""
    cfg = dict(run.config or {})
    launch = cfg.pop("launch", None) or {}
    root = Path(run.output_path).parent
    root.mkdir(parents=True, exist_ok=True)
    if run.export_id:
        train, test = export_dataset_files(run.export)
        cfg.update(dataset_path=train, eval_dataset_path=test)
    elif run.dataset_path:
        cfg["dataset_path"] = run.dataset_path
    else:
        prompts = _prompts_file(run)
        if not run.resumed_from_id:  # a resumed run reads the file its first run wrote
            _write_prompts(run, prompts)
        cfg["dataset_path"] = str(prompts)
    if run.reward_run_id:
        cfg["reward_model"] = run.reward_run.output_path
    if run.resumed_from_id:
        cfg["resume_from"] = str(checkpoints_dir(run.resumed_from.output_path))
    cfg.update(base_model=run.base_model, output_dir=run.output_path, overwrite_output_dir=False)
    known = config_fields(run.kind)
    return {k: v for k, v in cfg.items() if k in known}, launch


def _launch_command(run: TrainingRun, config_path: Path, launch: dict[str, Any]) -> list[str]:
    return command(
        run.kind,
        str(config_path),
        launcher=str(_setting("PREFHUB_TRAINING_LAUNCHER", "accelerate")),
        num_processes=int(launch.get("num_processes") or _setting("PREFHUB_TRAINING_NUM_PROCESSES", 1)),
        accelerate_config=str(launch.get("accelerate_config") or _setting("PREFHUB_ACCELERATE_CONFIG", "")),
    )


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


class _MetricsWriter:
    """Buffers metric events and writes them as MetricPoint rows + run.metrics["latest"]."""

    def __init__(self, run: TrainingRun) -> None:
        self.run = run
        self.pending: list[MetricPoint] = []
        self.latest: dict[str, Any] = dict((run.metrics or {}).get("latest") or {})
        self.last_flush = time.monotonic()

    def add(self, event: dict[str, Any]) -> None:
        step = int(event.get("step") or 0)
        values = {k: v for k, v in event.items() if k not in ("event", "step")}
        self.pending.append(MetricPoint(run_id=self.run.pk, step=max(step, 0), values=values))
        self.latest.update(
            {k: v for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        )
        self.latest["step"] = step

    def flush(self, *, force: bool = False) -> None:
        if not self.pending or (not force and time.monotonic() - self.last_flush < FLUSH_SECONDS):
            return
        with transaction.atomic():
            MetricPoint.objects.bulk_create(self.pending)
            metrics = dict(self.run.metrics or {})
            metrics["latest"] = self.latest
            self.run.metrics = metrics
            TrainingRun.objects.filter(pk=self.run.pk).update(metrics=metrics)
        self.pending = []
        self.last_flush = time.monotonic()


def _pump(stream, lines: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        lines.put(line)
    lines.put(None)


def run_execute(*, run_id: int, poll_seconds: float = 0.5) -> TrainingRun | None:
    """Run a queued run to its end in a subprocess (see the module docstring). Never raises for a
    failing run: the failure is recorded on the run."""
    if not _claim(run_id):  # already taken (a redelivered message), cancelled, or gone
        return TrainingRun.objects.filter(pk=run_id).first()
    run = TrainingRun.objects.select_related("project", "export", "reward_run", "resumed_from").get(pk=run_id)
    log_path = Path(run.log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        cfg, launch = runner_config(run)
        output = Path(run.output_path)  # named after the run's own name, as its log is (_free_run_name)
        config_path = output.with_name(f"{output.name}.config.json")
        config_path.write_text(json.dumps(cfg, indent=2), encoding="utf-8")
        cmd = _launch_command(run, config_path, launch)
    except Exception as exc:
        log.exception("training run %s could not start", run_id)
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        _finish(run, RunState.FAILED, error=f"The run could not start: {message}")
        return TrainingRun.objects.get(pk=run_id)

    # PASSIVE: OpenMP threads sleep instead of spinning when idle; on a shared CPU host spinning
    # threads slowed small-model training ~10x (measured: a 64x519 linear, 13 ms vs 0.8 ms).
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    writer = _MetricsWriter(run)
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    final: dict[str, Any] | None = None
    error_event: dict[str, Any] | None = None
    cancelled = ended_elsewhere = False
    grace = float(_setting("PREFHUB_TRAINING_CANCEL_GRACE_S", 30))
    with log_path.open("a", encoding="utf-8") as logf:
        logf.write(f"$ {' '.join(cmd)}\n")
        logf.flush()
        try:
            proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
                bufsize=1,
                cwd=str(settings.BASE_DIR),
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            _finish(run, RunState.FAILED, error=f"The run could not start: {exc}")
            return TrainingRun.objects.get(pk=run_id)
        try:
            TrainingRun.objects.filter(pk=run.pk).update(pid=proc.pid)
            lines: queue.Queue = queue.Queue()
            reader = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
            reader.start()
            term_sent_at: float | None = None
            last_cancel_check = 0.0
            exited_at: float | None = None
            while True:
                try:
                    line = lines.get(timeout=poll_seconds)
                except queue.Empty:
                    line = ""
                if line is None:  # end of output
                    break
                if line:
                    logf.write(line)
                    if line.strip():
                        tail.append(line.rstrip("\n"))
                    event = parse_event(line)
                    if event is not None:
                        if event["event"] == "metrics":
                            writer.add(event)
                        elif event["event"] == "final":
                            final = {k: v for k, v in event.items() if k != "event"}
                        elif event["event"] == "error":
                            error_event = event
                writer.flush()
                now = time.monotonic()
                if now - last_cancel_check >= 1.0 and term_sent_at is None:
                    last_cancel_check = now
                    logf.flush()
                    beating = TrainingRun.objects.filter(pk=run.pk, state=RunState.RUNNING)
                    if not beating.update(heartbeat_at=timezone.now()):
                        # Ended elsewhere: the stale-run sweep failed it while this worker was slow to
                        # beat. That end stands (a job ends once); training on would only burn GPUs.
                        ended_elsewhere = True
                        term_sent_at = now
                        state = TrainingRun.objects.filter(pk=run.pk).values_list("state", flat=True).first()
                        logf.write(
                            f"[prefhub] the run was ended elsewhere (now {state}): SIGTERM to the run's process group\n"
                        )
                        _kill_group(proc, signal.SIGTERM)
                    elif TrainingRun.objects.filter(pk=run.pk, cancel_requested=True).exists():
                        cancelled = True
                        term_sent_at = now
                        logf.write("[prefhub] cancel requested: SIGTERM to the run's process group\n")
                        _kill_group(proc, signal.SIGTERM)
                if term_sent_at is not None and proc.poll() is None and now - term_sent_at > grace:
                    logf.write("[prefhub] still running after the grace period: SIGKILL\n")
                    _kill_group(proc, signal.SIGKILL)
                    term_sent_at = float("inf")
                if proc.poll() is not None and not line:
                    exited_at = exited_at or now
                    if now - exited_at > 5:  # a grandchild still holds the pipe open
                        _kill_group(proc, signal.SIGKILL)
                        break
            rc = proc.wait()
            _kill_group(proc, signal.SIGKILL)  # stray children (data loader workers) go with it
            logf.write(f"[prefhub] exit code {rc}\n")
        except Exception as exc:  # the watch broke (the database went away...): stop the trainer
            log.exception("training run %s: the worker's watch over it broke", run_id)
            _stop_unwatched(proc, logf, grace, exc)
            remove_stale_tmp(run.output_path)
            if not connection.in_atomic_block:
                connection.close()  # a connection the database dropped; the next query opens another
            _finish(
                run,
                RunState.FAILED,
                error=f"The worker watching this run failed, so the run was stopped: {type(exc).__name__}: "
                f"{exc}\n\nLast lines of the log:\n" + "\n".join(tail),
            )
            return TrainingRun.objects.get(pk=run_id)
    writer.flush(force=True)
    run.refresh_from_db(fields=["metrics", "cancel_requested"])
    output_ok = Path(run.output_path).is_dir() and (Path(run.output_path) / "config.json").is_file()
    if rc == 0 and final is not None and output_ok and not (cancelled or ended_elsewhere):
        _finish(run, RunState.DONE, final=final)
        _drop_served_checkpoints(run)
    else:
        remove_stale_tmp(run.output_path)
        if ended_elsewhere:
            pass  # its end stands; _finish would not change it
        elif cancelled or run.cancel_requested:
            _finish(run, RunState.CANCELLED, error="Cancelled at the user's request.")
        else:
            if error_event is not None:
                headline = error_event.get("message", "The run failed.")
            elif rc < 0:
                headline = f"The training process was killed by signal {-rc} (out of memory?)."
            elif rc == 0:
                headline = "The training process ended without a final result or model."
            else:
                headline = f"The training process failed (exit code {rc})."
            _finish(run, RunState.FAILED, error=headline + "\n\nLast lines of the log:\n" + "\n".join(tail))
    return TrainingRun.objects.get(pk=run_id)


def _stop_unwatched(proc: subprocess.Popen, logf, grace: float, exc: Exception) -> None:
    """Stop a trainer whose worker can no longer watch it: SIGTERM to its process group (the runner
    removes its temporary output), SIGKILL after ``grace`` seconds. A trainer left running would
    train on unseen, in its own session, after the run is called failed."""
    with contextlib.suppress(OSError, ValueError):
        logf.write(f"[prefhub] the worker's watch over the run broke ({type(exc).__name__}): SIGTERM\n")
    _kill_group(proc, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    _kill_group(proc, signal.SIGKILL)
    proc.wait()


def _drop_served_checkpoints(run: TrainingRun) -> None:
    """Delete the checkpoints of the runs ``run`` (just finished) continued, through its chain of
    resumptions: they have served. A run that another resumption, queued or running, is about to
    continue (it was resumed twice) keeps its own until that one ends."""
    child, earlier = run, run.resumed_from
    while earlier is not None:
        if not earlier.resumptions.exclude(pk=child.pk).filter(state__in=jobs.ACTIVE_STATES).exists():
            shutil.rmtree(checkpoints_dir(earlier.output_path), ignore_errors=True)
        child, earlier = earlier, earlier.resumed_from


def run_python(*, kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """Run a runner in this process (the CLI): returns its final metrics, raises ``RunnerError``."""
    from training.runners.__main__ import run_kind
    from training.runners.protocol import Emitter, install_cancel_handler

    try:
        cfg = config_for(kind, config)
    except ConfigError as exc:
        raise InvalidInput(str(exc), field="config") from exc
    install_cancel_handler()
    return run_kind(kind, cfg, Emitter(cfg.metrics_file, stream=sys.stdout))


def runs_fail_stale(*, older_than: timedelta = timedelta(minutes=5), now: datetime | None = None) -> int:
    """Mark running runs whose worker stopped sending heartbeats (its machine died, or it was
    SIGKILLed with the task acknowledged) as failed, so they do not stay "running" forever; one
    whose cancel was requested ends cancelled, as asked. The executor beats every second while its
    subprocess lives. Returns how many were ended."""
    now = now or timezone.now()
    cutoff = now - older_than
    stale = TrainingRun.objects.filter(state=RunState.RUNNING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    )
    failed = 0
    for run in stale:
        with transaction.atomic():
            locked = (
                TrainingRun.objects.select_for_update(of=("self",))
                .filter(pk=run.pk, state=RunState.RUNNING)
                .first()
            )
            if locked is None:
                continue
            last = locked.heartbeat_at or locked.started_at
            silent = f"stopped answering (last sign of life {last:%Y-%m-%d %H:%M:%S} UTC)"
            if locked.cancel_requested:  # the researcher's cancel was accepted: it ends as asked
                _finish(
                    locked,
                    RunState.CANCELLED,
                    error=f"Cancelled at the user's request; the worker running it {silent} before it stopped the run.",
                )
            else:
                _finish(locked, RunState.FAILED, error=f"The worker running this run {silent}.")
            step = run_resume_point(run=locked)
            again = (
                f"Resume it from its checkpoint at step {step}."
                if step is not None
                else run_without_checkpoint_hint(run=locked)
            )
            TrainingRun.objects.filter(pk=locked.pk).update(error=f"{locked.error} {again}")
            audit_record(actor=None, project=locked.project, action="training.run_stale", target=locked)
            failed += 1
    return failed
