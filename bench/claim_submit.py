"""Claim + submit throughput and next-task latency on PostgreSQL, at 10k and 1M tasks.

Usage:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_claim .venv/bin/python bench/claim_submit.py \
        [--tasks 10000 1000000] [--labelers 8 16 32] [--seconds 10] [--overlap 3]

The database named in DATABASE_URL is created if missing, migrated, and filled with synthetic
prompts/candidates/tasks by set-based SQL (``generate_series``), so 1M tasks seed in about a minute.
Each labeler is a separate process with its own connection (no GIL, real row locks) that loops
``task_claim_next`` then ``annotation_submit`` for ``--seconds``. Prints one line per configuration.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ.setdefault("DJANGO_DEBUG", "false")


def _ensure_database(url: str) -> None:
    import psycopg

    dbname = url.rsplit("/", 1)[-1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{dbname}"')


def _seed(n_tasks: int, overlap: int) -> int:
    """Create a fresh project with n_tasks pairwise tasks; return its id."""
    from django.db import connection

    from annotate.services.projects import project_create

    project = project_create(name=f"bench {n_tasks} {time.time_ns()}", overlap=overlap, lease_ttl_seconds=600)
    t0 = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO annotate_prompt (project_id, external_id, messages, metadata, tags, created_at)
            SELECT %s, '', jsonb_build_array(jsonb_build_object('role','user','content','question ' || g)), '{}', '[]', now()
            FROM generate_series(1, %s) g
            """,
            [project.pk, n_tasks],
        )
        cur.execute(
            """
            INSERT INTO annotate_candidate (prompt_id, text, source, model_name, model_version, sampling_params, external_id,
                                            metadata, finish_reason, created_at)
            SELECT p.id, 'answer ' || s || ' to ' || p.id, 'imported', 'model-' || s, '', '{}', '', '{}', '', now()
            FROM annotate_prompt p CROSS JOIN generate_series(0, 1) s WHERE p.project_id = %s
            """,
            [project.pk],
        )
        cur.execute(
            """
            INSERT INTO annotate_task (project_id, prompt_id, target_labels, claims, is_gold, gold_choice, created_at)
            SELECT %s, p.id, %s, 0, false, '', now() FROM annotate_prompt p WHERE p.project_id = %s ORDER BY p.id
            """,
            [project.pk, overlap, project.pk],
        )
        cur.execute(
            """
            INSERT INTO annotate_taskcandidate (task_id, candidate_id, slot)
            SELECT t.id, c.id, row_number() OVER (PARTITION BY t.id ORDER BY c.id) - 1
            FROM annotate_task t JOIN annotate_candidate c ON c.prompt_id = t.prompt_id WHERE t.project_id = %s
            """,
            [project.pk],
        )
        cur.execute(
            "ANALYZE annotate_task; ANALYZE annotate_taskcandidate; ANALYZE annotate_assignment; ANALYZE annotate_annotation"
        )
    print(f"  seeded {n_tasks:,} tasks in {time.perf_counter() - t0:.1f} s", flush=True)
    return project.pk


def _labeler_loop(project_id: int, user_id: int, seconds: float, out: mp.Queue) -> None:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connections

    from annotate.models import Project
    from annotate.services.leasing import annotation_submit, task_claim_next

    connections.close_all()
    project = Project.objects.get(pk=project_id)
    user = get_user_model().objects.get(pk=user_id)
    claim_ms: list[float] = []
    submit_ms: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        lease = task_claim_next(project=project, labeler=user)
        t1 = time.perf_counter()
        if lease is None:
            break
        annotation_submit(assignment_id=lease.pk, labeler=user, choice="left", time_spent_ms=1000)
        t2 = time.perf_counter()
        claim_ms.append((t1 - t0) * 1000)
        submit_ms.append((t2 - t1) * 1000)
    out.put((claim_ms, submit_ms))
    connections.close_all()


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--labelers", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--overlap", type=int, default=3)
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit(
            "Set DATABASE_URL to a PostgreSQL database, e.g. postgres://postgres@127.0.0.1:5432/bench_claim"
        )
    _ensure_database(url)
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput", "-v0"], check=True)

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connections

    from annotate.services.projects import membership_add

    ctx = mp.get_context("fork")
    print(
        f"cpu cores: {os.cpu_count()}; each labeler is a process; {args.seconds:.0f} s per configuration",
        flush=True,
    )
    for n_tasks in args.tasks:
        project_id = _seed(n_tasks, args.overlap)
        from annotate.models import Project

        project = Project.objects.get(pk=project_id)
        for n_labelers in args.labelers:
            users = []
            for i in range(n_labelers):
                user = get_user_model().objects.create_user(username=f"bench-{project_id}-{n_labelers}-{i}")
                membership_add(project=project, user=user, role="labeler")
                users.append(user)
            connections.close_all()
            out = ctx.Queue()
            procs = [
                ctx.Process(target=_labeler_loop, args=(project_id, u.pk, args.seconds, out)) for u in users
            ]
            t0 = time.perf_counter()
            for p in procs:
                p.start()
            results = [out.get() for _ in procs]
            for p in procs:
                p.join()
            wall = time.perf_counter() - t0
            claims = [x for r in results for x in r[0]]
            submits = [x for r in results for x in r[1]]
            print(
                f"tasks={n_tasks:>9,} labelers={n_labelers:>2}  claim+submit/s={len(claims) / wall:7.1f}  "
                f"next-task p50={_pct(claims, 0.5):6.1f} ms p99={_pct(claims, 0.99):6.1f} ms  "
                f"submit p50={_pct(submits, 0.5):6.1f} ms p99={_pct(submits, 0.99):6.1f} ms  "
                f"(n={len(claims)}, mean next-task {statistics.fmean(claims) if claims else float('nan'):.1f} ms)",
                flush=True,
            )


if __name__ == "__main__":
    main()
