"""Settings (issue 12): ``base`` is safe on its own, development defaults live in ``local`` (what
manage.py uses), wsgi/asgi and the Celery app default to production, importing settings creates no
folders (the ones in use are made at start-up)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLEARED = (
    "DJANGO_SETTINGS_MODULE",
    "DJANGO_DEBUG",
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "REDIS_URL",
    "PREFHUB_VAR_DIR",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
)


def _python(code: str, tmp_path: Path, **extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env["PREFHUB_VAR_DIR"] = str(tmp_path / "var")
    env.update(extra)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_base_settings_are_safe_and_no_settings_module_creates_folders(tmp_path):
    code = (
        "import importlib, sys\n"
        "for name in ('config.settings.base', 'config.settings.local', 'config.settings.test'):\n"
        "    importlib.import_module(name)\n"
        "base = sys.modules['config.settings.base']\n"
        "print(base.DEBUG, repr(base.SECRET_KEY), base.ALLOWED_HOSTS)\n"
    )
    result = _python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False '' []"
    assert not (tmp_path / "var").exists(), "importing settings created folders"


def test_base_alone_refuses_to_run_without_a_secret_key(tmp_path):
    code = "import django; django.setup(); from django.conf import settings; settings.SECRET_KEY"
    result = _python(code, tmp_path, DJANGO_SETTINGS_MODULE="config.settings.base")
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


def test_wsgi_asgi_and_celery_default_to_production(tmp_path):
    for module in ("config.wsgi", "config.asgi"):
        result = _python(f"import {module}", tmp_path)
        assert result.returncode != 0, module
        assert "DJANGO_SECRET_KEY" in result.stderr, (module, result.stderr[-2000:])
    result = _python(
        "import os, config.celery; print(os.environ['DJANGO_SETTINGS_MODULE'])",
        tmp_path,
    )
    assert result.stdout.strip() == "config.settings.production", result.stderr
    result = _python(
        "import config.wsgi; from django.conf import settings; print(settings.SETTINGS_MODULE, settings.DEBUG)",
        tmp_path,
        DJANGO_SECRET_KEY="k" * 50,
        DJANGO_ALLOWED_HOSTS="example.org",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "config.settings.production False"


def test_manage_py_defaults_to_local_and_makes_the_folders_it_uses(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in CLEARED}
    env["PREFHUB_VAR_DIR"] = str(tmp_path / "var")
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.conf import settings; print(settings.SETTINGS_MODULE, settings.DEBUG)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "config.settings.local True"
    # made at start-up, where they are used: the SQLite folder and the embedded broker's folders
    assert (tmp_path / "var").is_dir()
    assert (tmp_path / "var" / "broker" / "queue").is_dir()


@pytest.mark.postgres(reason="the keepalive is a PostgreSQL session setting")
@pytest.mark.django_db
def test_postgres_sessions_probe_a_silent_client_within_a_minute():
    """A worker machine that dies keeps its session (and any job lock, core.jobs.run_alone) only
    until the server's TCP keepalive gives up on it: one minute idle plus six probes, not the
    system's two hours."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SHOW tcp_keepalives_idle")
        idle = cur.fetchone()[0]
        cur.execute("SHOW tcp_keepalives_count")
        count = cur.fetchone()[0]
    assert (idle, count) == ("60", "6")  # 7200 and 9 before (the system default)


def test_a_refused_request_logs_one_line_and_a_fault_keeps_its_traceback(client, make_project, make_user):
    """Every 403 logged a full traceback (Django's django.request warning carries exc_info), burying
    real errors. The console handler keeps the warning line and drops the traceback of a refusal."""
    import io
    import logging

    from annotate.services.projects import membership_add

    console = next(h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler))
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(console.formatter)
    for f in console.filters:
        handler.addFilter(f)
    logging.getLogger("django.request").addHandler(handler)
    try:
        project = make_project()
        user = make_user("lab")
        membership_add(project=project, user=user, role="labeler")
        client.force_login(user)
        assert client.get(f"/projects/{project.slug}/manage/").status_code == 403
        try:
            raise RuntimeError("a real fault")
        except RuntimeError:
            logging.getLogger("django.request").exception("Internal Server Error: /x")
    finally:
        logging.getLogger("django.request").removeHandler(handler)
    text = out.getvalue()
    assert "Forbidden (Permission denied): /projects/" in text
    assert text.count("Traceback") == 1 and "a real fault" in text  # only the fault's
