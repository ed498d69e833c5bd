"""Load test: simulated labelers claim and submit against gunicorn + PostgreSQL + Redis.

Usage:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_load REDIS_URL=redis://127.0.0.1:6379/5 \
    .venv/bin/python bench/load_test.py [--tasks 1000000] [--users 50 100 200] [--seconds 60] [--workers 4] [--think 1.0]

Seeds a project with ``--tasks`` pairwise tasks (set-based SQL, like bench/claim_submit.py), creates
one labeler and API token per simulated user, starts ``gunicorn config.wsgi`` with ``--workers`` sync
workers on a loopback port, and runs Locust headless for ``--seconds`` per user count (bounded; it
stops by itself). Prints requests/s, p50/p95/p99 latency of next-task and submit, and errors.
Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import database_ready, free_port  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ.setdefault("DJANGO_DEBUG", "false")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--think", type=float, default=1.0, help="seconds between a labeler's tasks (0 = hammer)"
    )
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres") or not os.environ.get("REDIS_URL"):
        sys.exit(
            "Set DATABASE_URL (PostgreSQL) and REDIS_URL, e.g. postgres://postgres@127.0.0.1:5432/bench_load"
        )

    from bench.claim_submit import _seed

    database_ready()
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from annotate.models import Project
    from annotate.services.projects import membership_add
    from annotate.services.tokens import token_create

    project = Project.objects.get(pk=_seed(args.tasks, 3)[0])
    tokens_file = Path(tempfile.mkdtemp()) / "tokens.txt"
    secrets = []
    for i in range(max(args.users)):
        user = get_user_model().objects.create_user(username=f"load-{project.pk}-{i}")
        membership_add(project=project, user=user, role="labeler")
        secrets.append(token_create(user=user, name="load test", projects=[project])[1])
    tokens_file.write_text("\n".join(secrets))
    from django.db import connections

    connections.close_all()

    port = free_port()
    env = dict(os.environ, RATE_CLAIM="100000/min", RATE_SUBMIT="100000/min", PREFHUB_LOAD_TOKENS=str(tokens_file),
               PREFHUB_LOAD_PROJECT=project.slug, PREFHUB_LOAD_THINK=str(args.think))  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "--workers", str(args.workers), "--bind", f"127.0.0.1:{port}",
         "--log-level", "warning", "--timeout", "60"],
        cwd=ROOT, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        print(f"gunicorn: {args.workers} workers on 127.0.0.1:{port}; tasks={args.tasks:,}; think={args.think}s; "
              f"cores={os.cpu_count()}", flush=True)  # fmt: skip
        for users in args.users:
            prefix = Path(tempfile.mkdtemp()) / "locust"
            subprocess.run(
                [sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "locustfile.py"), "--headless",
                 "-u", str(users), "-r", str(max(users // 5, 1)), "-t", f"{args.seconds}s", "--host",
                 f"http://127.0.0.1:{port}", "--csv", str(prefix), "--only-summary", "--loglevel", "ERROR",
                 "--stop-timeout", "5"],
                cwd=ROOT, env=env, check=False, stdout=subprocess.DEVNULL, timeout=args.seconds + 120,
            )  # fmt: skip
            with open(f"{prefix}_stats.csv") as f:
                rows = {r["Name"]: r for r in csv.DictReader(f)}
            parts = []
            for name in ("next-task", "submit"):
                r = rows.get(name)
                if r:
                    parts.append(f"{name}: {float(r['Requests/s']):6.1f}/s p50={r['50%']}ms p95={r['95%']}ms "
                                 f"p99={r['99%']}ms fails={r['Failure Count']}")  # fmt: skip
            agg = rows.get("Aggregated", {})
            print(f"users={users:>3}  total {float(agg.get('Requests/s', 0)):6.1f} req/s, errors={agg.get('Failure Count')}  "
                  + "  |  ".join(parts), flush=True)  # fmt: skip
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
