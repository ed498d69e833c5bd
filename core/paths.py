"""Paths a user may name: datasets, base/reward models, accelerate configs, endpoint model folders.

The rule, in one place: a local path named by a user (a page or the API) must lie inside

- the project's own exports (``PREFHUB_DATA_DIR/exports/<slug>/``) or runs
  (``PREFHUB_DATA_DIR/runs/<slug>/``), or
- a folder the administrator allowed for that kind of file: shared datasets in
  ``PREFHUB_DATA_DIR/datasets/`` and ``PREFHUB_DATASET_DIRS``; models in
  ``PREFHUB_ALLOWED_MODEL_DIRS``; accelerate configs in the bundled ``training/accelerate/`` and
  ``PREFHUB_ACCELERATE_CONFIG_DIRS`` (each a list, or an ``os.pathsep``-separated string, in
  settings or the environment).

Never another project's exports, runs or models: nothing a user could not download. The place is
decided from the path's text (symlinks resolved) before the file system is asked whether it exists,
and a refusal reads the same for existing and missing files, so the answers are no oracle on the
worker's disk. Only inside an allowed folder does "no such file" get its own message.

A model may also be a Hugging Face Hub id (``name`` or ``org/name``); that is not a local path and is
left to the backend. The command line (``restrict=False`` in the services) names any path: its
user already has the machine.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from django.conf import settings

from annotate.errors import InvalidInput
from annotate.models import Project

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
    MODEL: "a Hugging Face name, a model of this project's runs, or one in PREFHUB_ALLOWED_MODEL_DIRS",
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


def allowed_roots(project: Project, kind: str) -> list[Path]:
    """The folders a user of ``project`` may name a ``kind`` of file in."""
    data = Path(settings.PREFHUB_DATA_DIR)
    roots = []
    if kind in (DATASET, MODEL):
        roots += [data / "exports" / project.slug, data / "runs" / project.slug]
    if kind == DATASET:
        roots.append(data / "datasets")
    if kind == CONFIG:
        roots.append(BUNDLED_ACCELERATE_CONFIGS)
    roots += [Path(p) for p in _setting_list(_EXTRA[kind])]
    return [Path(os.path.realpath(r.expanduser())) for r in roots]


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


def user_model(value: str, *, project: Project, field: str) -> str:
    """A model a user named: a Hugging Face Hub id as it is, a local folder by ``user_path``."""
    value = (value or "").strip()
    if is_hub_id(value):
        return value
    return user_path(value, project=project, kind=MODEL, field=field)
