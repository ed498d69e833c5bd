"""Folders the configured storage needs, made at start-up (never when settings are imported): the
SQLite database's folder, the embedded broker's folders, and in development ``var/`` itself."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings


def runtime_dirs() -> list[Path]:
    dirs: list[Path] = []
    db = settings.DATABASES["default"]
    name = str(db.get("NAME") or "")
    if (
        db["ENGINE"] == "django.db.backends.sqlite3"
        and name
        and ":memory:" not in name
        and "mode=memory" not in name
    ):
        dirs.append(Path(name).parent)
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    if str(getattr(settings, "CELERY_BROKER_URL", "")).startswith("filesystem://"):
        for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
            if options.get(key):
                dirs.append(Path(options[key]))
    if settings.DEBUG:
        dirs.extend([Path(settings.VAR_DIR), Path(settings.STATIC_ROOT)])
    return dirs


def runtime_dirs_ensure() -> None:
    for path in runtime_dirs():
        path.mkdir(parents=True, exist_ok=True)
