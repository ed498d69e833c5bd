"""Environment variables the README documents reach the settings.

README (production, generation workers): "A worker keeps one model loaded
(`PREFHUB_BACKEND_CACHE_SIZE`, default 1)". Every other documented variable is read from the
environment; this one was read only as a Django setting that no settings module set, so exporting
it changed nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _cache_size(tmp_path: Path, **extra: str) -> str:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SETTINGS_MODULE", "PREFHUB_BACKEND_CACHE_SIZE")
    }
    env.update(PREFHUB_VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="config.settings.local", **extra)
    code = "import django; django.setup()\nfrom generation.backends import cache_size\nprint(cache_size())\n"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_backend_cache_size_defaults_to_one(tmp_path):
    assert _cache_size(tmp_path) == "1"


def test_backend_cache_size_comes_from_the_environment(tmp_path):
    assert _cache_size(tmp_path, PREFHUB_BACKEND_CACHE_SIZE="3") == "3"
