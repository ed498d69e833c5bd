"""Paths a user may name: datasets, base/reward models, accelerate configs, endpoint model folders.

The rule, in one place: a local path named by a user (a page or the API) must lie inside

- the project's own exports (``PREFHUB_DATA_DIR/exports/<slug>/``) or runs
  (``PREFHUB_DATA_DIR/runs/<slug>/``), or
- a folder the administrator allowed for that kind of file: shared datasets in
  ``PREFHUB_DATA_DIR/datasets/`` and ``PREFHUB_DATASET_DIRS``; models in
  ``PREFHUB_ALLOWED_MODEL_DIRS``; accelerate configs in the bundled ``training/accelerate/`` and
  ``PREFHUB_ACCELERATE_CONFIG_DIRS`` (each a list, or an ``os.pathsep``-separated string, in
  settings or the environment).

Never another project's exports, runs or models: nothing a user could not download. Nor a deleted
project's: its folders go once its deletion commits (``remove_project_folders``), and a new project
whose slug's folders are already there has them moved aside to ``PREFHUB_DATA_DIR/retired/``
(``retire_project_folders``), both from ``annotate.signals``, whatever deletes or creates it. The place is
decided from the path's text (symlinks resolved) before the file system is asked whether it exists,
and a refusal reads the same for existing and missing files, so the answers are no oracle on the
worker's disk. Only inside an allowed folder does "no such file" get its own message.

A model may also be a Hugging Face Hub id (``name`` or ``org/name``), or the local folder of a
generation endpoint the project may use (its own, or a shared one an administrator registered, such
as the demo's tiny model). The command line (``restrict=False`` in the services) names any path:
its user already has the machine.

Whether a model is usable (``usable_model``, for training runs, checked when the run is submitted,
not 80 s later in the worker): a local folder holds a ``config.json`` with a ``model_type`` and
tokenizer files; a Hub id is in the local Hugging Face cache (``PREFHUB_HF_HUB_CACHE``, default the
``huggingface_hub`` cache), the ``HF_HUB_OFFLINE`` way, unless ``PREFHUB_HUB_ONLINE`` allows names
the workers download (and ``HF_HUB_OFFLINE`` is not set). The web process and the training workers
are assumed to share the cache (one machine, or a shared volume).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

from django.conf import settings

from annotate.errors import InvalidInput
from annotate.models import Project

log = logging.getLogger(__name__)

DATASET, MODEL, CONFIG = "dataset", "model", "config"
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?$")
BUNDLED_ACCELERATE_CONFIGS = Path(__file__).resolve().parent.parent / "training" / "accelerate"
MAX_PATH_CHARS = 1000

_EXTRA = {
    DATASET: "PREFHUB_DATASET_DIRS",
    MODEL: "PREFHUB_ALLOWED_MODEL_DIRS",
    CONFIG: "PREFHUB_ACCELERATE_CONFIG_DIRS",
}
_WHAT = {
    DATASET: "a file of this project's exports or runs, or one in a shared datasets folder "
    "(datasets/ in the platform's data folder, or PREFHUB_DATASET_DIRS)",
    MODEL: "a Hugging Face name, a model of this project's runs, the model of a generation endpoint "
    "this project can use, or one in PREFHUB_ALLOWED_MODEL_DIRS",
    CONFIG: "a bundled accelerate config (training/accelerate/) or one in PREFHUB_ACCELERATE_CONFIG_DIRS",
}
_MISSING = {
    DATASET: "No dataset file at {}.",
    MODEL: "No model folder at {}.",
    CONFIG: "No config file at {}.",
}


def _setting_list(name: str) -> list[str]:
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name, "")
    if isinstance(value, str):
        return [p for p in value.split(os.pathsep) if p]
    return [str(p) for p in value]


def project_folders(slug: str) -> list[Path]:
    """The folders of the project ``slug``'s files: its exports and its runs."""
    data = Path(settings.PREFHUB_DATA_DIR)
    return [data / "exports" / slug, data / "runs" / slug]


def remove_project_folders(slug: str) -> None:
    """Delete a deleted project's folders (its exports, runs, trained models and checkpoints)."""
    for folder in project_folders(slug):
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
            log.info("removed %s (project %r deleted)", folder, slug)


def retire_project_folders(slug: str) -> Path | None:
    """Move the folders already at a new project's ``slug`` (a deleted project's, whose removal did
    not finish, or files a restored database no longer names) to ``retired/<slug>-<time>-<n>/``,
    where no project's user can name them; the administrator decides what becomes of them. Returns
    where they went, None when there were none."""
    found = [f for f in project_folders(slug) if f.exists()]
    if not found:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    dest = Path(settings.PREFHUB_DATA_DIR) / "retired" / f"{slug}-{stamp}-{secrets.token_hex(3)}"
    dest.mkdir(parents=True)
    for folder in found:
        os.replace(folder, dest / folder.parent.name)  # exports/, runs/
    log.warning("project %r is new, but its folders were there: moved to %s", slug, dest)
    return dest


def allowed_roots(project: Project, kind: str) -> list[Path]:
    """The folders a user of ``project`` may name a ``kind`` of file in."""
    data = Path(settings.PREFHUB_DATA_DIR)
    roots = []
    if kind in (DATASET, MODEL):
        roots += project_folders(project.slug)
    if kind == DATASET:
        roots.append(data / "datasets")
    if kind == CONFIG:
        roots.append(BUNDLED_ACCELERATE_CONFIGS)
    roots = [Path(os.path.realpath(r.expanduser())) for r in roots]
    return roots + extra_roots(kind)


def extra_roots(kind: str) -> list[Path]:
    """The folders the administrator allowed for a ``kind`` of file (settings or environment)."""
    return [Path(os.path.realpath(Path(p).expanduser())) for p in _setting_list(_EXTRA[kind])]


def is_hub_id(value: str) -> bool:
    return bool(HUB_ID.match(value)) and ".." not in value


def user_path(value: str, *, project: Project, kind: str, field: str, must_exist: bool = True) -> str:
    """``value`` resolved, if a user of ``project`` may name it as a ``kind``; InvalidInput
    otherwise (the same message whether or not something exists there)."""
    refusal = InvalidInput(f"{field} must be {_WHAT[kind]}.", field=field)
    if not value or len(value) > MAX_PATH_CHARS or "\x00" in value:
        raise refusal
    try:
        resolved = Path(os.path.realpath(Path(value).expanduser()))
    except (OSError, ValueError, RuntimeError):
        raise refusal from None
    if not any(resolved == root or resolved.is_relative_to(root) for root in allowed_roots(project, kind)):
        raise refusal
    if must_exist:
        try:
            exists = resolved.is_file() if kind in (DATASET, CONFIG) else resolved.is_dir()
        except OSError:
            exists = False
        if not exists:
            raise InvalidInput(_MISSING[kind].format(value), field=field)
    return str(resolved)


def _local_model_endpoints(project: Project):
    """The endpoints ``project`` may use (its own and the shared ones) that load a model themselves
    (transformers, vLLM): their ``model`` is a folder or a Hub id a run can start from."""
    from generation.models import Backend
    from generation.selectors import endpoints_for_project

    return endpoints_for_project(project=project).filter(backend__in=(Backend.TRANSFORMERS, Backend.VLLM))


def endpoint_model_folders(project: Project) -> set[str]:
    """Resolved local model folders of the generation endpoints ``project`` may use (its own and
    the shared ones): registered by an administrator, or checked by ``user_model`` when created."""
    folders = set()
    for model in _local_model_endpoints(project).values_list("model", flat=True):
        if model and not is_hub_id(model) and "\x00" not in model:
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                folders.add(os.path.realpath(Path(model).expanduser()))
    return folders


def endpoint_model_by_name(project: Project, name: str) -> str | None:
    """The model (resolved folder, or Hub id) of the endpoint named ``name`` that ``project`` may
    use, or None: a run may name an endpoint (the demo's ``tiny-demo``) for the model it serves."""
    model = _local_model_endpoints(project).filter(name=name).values_list("model", flat=True).first()
    if not model or "\x00" in model:
        return None
    if is_hub_id(model):
        return model
    try:
        return os.path.realpath(Path(model).expanduser())
    except (OSError, ValueError, RuntimeError):
        return None


def endpoint_names(project: Project) -> list[str]:
    """Names of the endpoints whose model a run of ``project`` may start from (for messages)."""
    return list(_local_model_endpoints(project).order_by("name").values_list("name", flat=True)[:20])


def user_model(value: str, *, project: Project, field: str) -> str:
    """A model a user named: the name of an endpoint the project may use (its model), a Hugging
    Face Hub id as it is, the folder of such an endpoint, or a local folder by ``user_path``. An
    endpoint's name wins over the same Hub id: the endpoints are what the project's pages offer."""
    value = (value or "").strip()
    by_name = endpoint_model_by_name(project, value) if value and len(value) <= MAX_PATH_CHARS else None
    if by_name is not None:
        return by_name
    if is_hub_id(value):
        return value
    if value and len(value) <= MAX_PATH_CHARS and "\x00" not in value:
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            resolved = os.path.realpath(Path(value).expanduser())
            if resolved in endpoint_model_folders(project) and Path(resolved).is_dir():
                return resolved
    return user_path(value, project=project, kind=MODEL, field=field)


# --- is the model usable? ------------------------------------------------------------------------

# Files any of which lets AutoTokenizer build a tokenizer (fast JSON, sentencepiece, BPE, WordPiece).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "spiece.model", "vocab.json", "vocab.txt")
MAX_CONFIG_BYTES = 1_000_000


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def hub_online() -> bool:
    """May a run name a Hub model that is not in the cache (the worker downloads it)? Only when
    ``PREFHUB_HUB_ONLINE`` says so and ``HF_HUB_OFFLINE`` is not set."""
    offline = getattr(settings, "HF_HUB_OFFLINE", None)
    if offline is None:
        offline = os.environ.get("HF_HUB_OFFLINE", "")
    return _truthy(getattr(settings, "PREFHUB_HUB_ONLINE", False)) and not _truthy(offline)


def hub_cache_dir() -> str:
    from huggingface_hub import constants

    return str(getattr(settings, "PREFHUB_HF_HUB_CACHE", None) or constants.HF_HUB_CACHE)


def _folder_problem(folder: Path, *, reward: bool = False) -> str | None:
    """Why ``folder`` is no loadable model (config + tokenizer), or None. ``reward``: it must also be
    a trained scorer (a ``...ForSequenceClassification`` architecture), not a base model whose
    score head would be initialised at random."""
    config = folder / "config.json"
    try:
        if not config.is_file():
            return "it has no config.json (not a Hugging Face model folder)"
        if config.stat().st_size > MAX_CONFIG_BYTES:
            return "its config.json is too large to be a model config"
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return "its config.json cannot be read"
    except (json.JSONDecodeError, RecursionError):
        return "its config.json is not valid JSON"
    if not isinstance(data, dict) or not isinstance(data.get("model_type"), str):
        return "its config.json names no model_type"
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        return f"it has no tokenizer files ({', '.join(TOKENIZER_FILES)})"
    if reward:
        archs = data.get("architectures")
        archs = [a for a in archs if isinstance(a, str)] if isinstance(archs, list) else []
        if not any(a.endswith("ForSequenceClassification") for a in archs):
            return (
                f"it is not a reward model (architecture {', '.join(archs) or 'not named'}; a reward model "
                "is a sequence classifier, such as the output of a reward run)"
            )
    return None


def cached_hub_folder(repo_id: str) -> Path | None:
    """The cached snapshot folder of ``repo_id`` (its default revision), or None."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json", cache_dir=hub_cache_dir())
    except Exception:  # an id the library refuses (HFValidationError) is simply not cached
        return None
    return Path(found).parent if isinstance(found, str) else None


def usable_model(
    value: str, *, project: Project | None, field: str, restrict: bool = True, reward: bool = False
) -> str:
    """``value`` (a Hub id or a local folder, resolved) if a run can load it; InvalidInput naming
    ``field`` otherwise. ``restrict`` (pages, API) applies ``user_model`` first, so that only
    folders the user may name are looked into (no oracle); the CLI passes False (and may pass no
    ``project``). ``reward``: the model scores (PPO/RLOO/GRPO, ``evaluate_reward``), so it must be
    a sequence classifier (``_folder_problem``)."""
    value = (value or "").strip()
    if restrict:
        value = user_model(value, project=project, field=field)
    if is_hub_id(value) and not (restrict is False and Path(value).is_dir()):
        folder = cached_hub_folder(value)
        if folder is None:
            if hub_online():
                return value
            names = endpoint_names(project) if restrict else []
            endpoints = f" (this project's endpoints: {', '.join(names)})" if names else ""
            raise InvalidInput(
                f"model {value!r} not found locally: it is not in this server's Hugging Face cache "
                "and downloads from the Hub are off. Check the spelling, pick a registered model or "
                f"name an endpoint{endpoints}, or have it downloaded first (huggingface-cli download {value}).",
                field=field,
            )
        problem = _folder_problem(folder, reward=reward)
        if problem:
            raise InvalidInput(
                f"model {value!r} in the Hugging Face cache is not usable: {problem}.", field=field
            )
        return value
    folder = Path(value)
    if not folder.is_dir():
        raise InvalidInput(_MISSING[MODEL].format(value), field=field)
    problem = _folder_problem(folder, reward=reward)
    if problem:
        raise InvalidInput(f"model {value!r} is not usable: {problem}.", field=field)
    return value
