"""Import throughput over the real HTTP API: N two-response prompts (one pairwise task each) posted
as a multipart upload to ``POST /api/v1/projects/<slug>/imports/`` with a bearer token.

Server: a live gunicorn (``config.wsgi``, one sync worker, DEBUG off) started fresh for each size,
so its peak RSS (VmHWM of the worker process, from /proc) is that one import's. The client streams
the multipart body from a file on disk with a Content-Length, as ``curl -F`` would. Rows/s is
prompts per second of the request's wall time (upload, parsing, inserts, commit, ANALYZE).

Usage:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_import_api .venv/bin/python bench/import_api.py \
        [--prompts 10000 100000]

Figures seen (issue 16; 2 CPU cores, PostgreSQL 15):
    before (main, 2026-11-30, load 2-2.6):  100k in 29.9-35.7 s (2,800-3,350 rows/s)
    2026-11-30 (COPY path, reader thread, trusted keys, load 2-2.6):  100k in 10.2-13.1 s
    2026-12-01, idle machine, a fresh database each run (the import also ANALYZEs):
        before the one-statement id reservation and text timestamps: 100k in 9.9, 10.3, 10.1 s
            (worker CPU 7.0-7.4 s)
        after:  100k in 9.3, 9.0, 9.0, 9.2, 9.4 s (10,650-11,140 rows/s, worker CPU 6.3-6.5 s)
    2026-12-01 an hour later, the same machine ~1.5x slower (the worker's CPU time for the same
    import 9.2-10.5 s instead of 6.3-6.5 s), alternating the code before and after the id-clash
    and one-statement reservation change: before 13.5, 13.7, 16.2 s; after 13.6, 14.9, 14.1 s
    (12.4, 12.8 s just before); differences below this machine's run-to-run noise.
    peak RSS of the worker 216 MB against 185 MB idle after one request (pyarrow and scipy load
    with the URLconf).

The database named in DATABASE_URL is created if missing and migrated; without DATABASE_URL a
fresh SQLite file in a temporary folder is used. ``run_import_api_bench()`` returns the figures as a
dict (for combining with ``bench/claim_submit.py`` in one run).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import database_ready, free_port, write_prompts  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ.setdefault("DJANGO_DEBUG", "false")


def _multipart(src: Path, dst: Path, boundary: str) -> int:
    """The multipart/form-data body of one ``file`` field, written to ``dst`` (streamed, 1 MiB pieces)."""
    with open(dst, "wb") as out, open(src, "rb") as f:
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{src.name}"\r\n'
            "Content-Type: application/x-ndjson\r\n\r\n".encode()
        )
        while chunk := f.read(1024 * 1024):
            out.write(chunk)
        out.write(f"\r\n--{boundary}--\r\n".encode())
    return dst.stat().st_size


def _status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _worker_pid(master: subprocess.Popen) -> int:
    import psutil

    for _ in range(600):
        children = psutil.Process(master.pid).children()
        if children:
            return children[0].pid
        time.sleep(0.05)
    raise RuntimeError("gunicorn started no worker")


def _wait_listening(port: int, proc: subprocess.Popen) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not start listening")


def _setup_project(n: int) -> tuple[str, str]:
    """A fresh project, a manager in it and a bearer token of theirs: (slug, secret)."""
    from django.contrib.auth import get_user_model
    from django.db import connections

    from annotate.services.projects import membership_add, project_create
    from annotate.services.tokens import token_create

    stamp = time.time_ns()
    project = project_create(name=f"import api bench {n} {stamp}", overlap=3)
    user = get_user_model().objects.create_user(username=f"import-bench-{stamp}")
    membership_add(project=project, user=user, role="manager")
    _, secret = token_create(user=user, name="import bench")
    connections.close_all()
    return project.slug, secret


def import_one(n: int, tmp: Path, *, raw: bool = False) -> dict:
    """Start a server, post ``n`` prompts, stop it; return this import's figures."""
    import requests

    src = tmp / f"prompts-{n}.jsonl"
    size = write_prompts(src, n)
    boundary = uuid.uuid4().hex
    body = tmp / f"body-{n}.bin"
    if raw:  # the file itself is the body
        body, body_size, content_type = src, size, "application/x-ndjson"
    else:
        body_size = _multipart(src, body, boundary)
        content_type = f"multipart/form-data; boundary={boundary}"
    slug, secret = _setup_project(n)
    port = free_port()
    env = dict(os.environ, RATE_IMPORT="100000/hour", PYTHONUNBUFFERED="1")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "--timeout", "900", "--log-level", "warning"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        _wait_listening(port, server)
        worker = _worker_pid(server)
        # One small request first, so the baseline includes the loaded URLconf and views.
        requests.get(
            f"http://127.0.0.1:{port}/api/v1/projects/{slug}/",
            headers={"Authorization": f"Bearer {secret}", "Host": "localhost"},
            timeout=120,
        ).raise_for_status()
        rss_before_mb = _status_kb(worker, "VmRSS") / 1024
        cpu_before = _cpu_seconds(worker)
        with open(body, "rb") as f:
            t0 = time.perf_counter()
            resp = requests.post(
                f"http://127.0.0.1:{port}/api/v1/projects/{slug}/imports/",
                data=f,
                headers={
                    "Authorization": f"Bearer {secret}",
                    "Content-Type": content_type,
                    "Content-Length": str(body_size),
                    "Host": "localhost",
                },
                timeout=900,
            )
            seconds = time.perf_counter() - t0
        peak_mb = _status_kb(worker, "VmHWM") / 1024
        worker_cpu = _cpu_seconds(worker) - cpu_before
    finally:
        server.terminate()
        server.wait(timeout=60)
        body.unlink(missing_ok=True)
        src.unlink(missing_ok=True)
    report = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
    if resp.status_code != 201:
        raise RuntimeError(f"import of {n} prompts answered {resp.status_code}: {resp.text[:500]}")
    return {
        "prompts": report.get("prompts", 0),
        "candidates": report.get("candidates", 0),
        "tasks": report.get("tasks", 0),
        "file_mb": round(size / 1e6, 1),
        "seconds": round(seconds, 2),
        "web_cpu_s": round(worker_cpu, 2),  # CPU time of the gunicorn worker (both its threads)
        "rows_per_s": round(report.get("prompts", 0) / seconds),
        "rss_before_mb": round(rss_before_mb, 1),  # after one small request
        "peak_rss_mb": round(peak_mb, 1),
    }


def run_import_api_bench(sizes: tuple[int, ...] = (10_000, 100_000), *, raw: bool = False) -> dict:
    """Import each size over the API against DATABASE_URL (created and migrated if needed);
    returns ``{"server": ..., "database": ..., "imports": [figures per size]}``."""
    tmp = Path(tempfile.mkdtemp(prefix="prefhub-bench-import-api-"))
    database_ready(tmp)
    import django

    django.setup()
    from django.db import connection

    vendor = connection.vendor
    results = [import_one(n, tmp, raw=raw) for n in sizes]
    upload = "the file as the body" if raw else "multipart form"
    return {
        "server": "gunicorn, 1 sync worker, DEBUG off",
        "upload": upload,
        "database": vendor,
        "imports": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument(
        "--raw", action="store_true", help="Send the file as the request body (application/x-ndjson)."
    )
    parser.add_argument("--json", action="store_true", help="Print the figures as one JSON object.")
    args = parser.parse_args()
    figures = run_import_api_bench(tuple(args.prompts), raw=args.raw)
    if args.json:
        print(json.dumps(figures))
        return
    print(
        f"import over the API ({figures['server']}, {figures['upload']}, {figures['database']}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores):"
    )
    for r in figures["imports"]:
        print(
            f"  prompts={r['prompts']:>8,}  ({r['file_mb']:.0f} MB, {r['tasks']:,} tasks)  {r['seconds']:6.1f} s  "
            f"{r['rows_per_s']:>7,} rows/s  web worker CPU {r['web_cpu_s']:5.1f} s  peak RSS {r['peak_rss_mb']:.0f} MB (warm idle {r['rss_before_mb']:.0f} MB)",
            flush=True,
        )


if __name__ == "__main__":
    main()
