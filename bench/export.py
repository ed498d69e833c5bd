"""Export throughput and memory on PostgreSQL: 100k and 1M annotations.

Usage:
    .venv/bin/python bench/export.py [--sizes 100000 1000000] [--format trl] [--file-type jsonl]
        [--database-url postgres://postgres@127.0.0.1:5432/bench_export] [--reseed]

The database (default ``bench_export``) is created if missing, migrated, and seeded by set-based SQL
(``generate_series``): per size, one pairwise project with prompts of 3 candidates (3 pair tasks
each) and 4 labelers' annotations per task (70 % a, 20 % b, 10 % tie; strengths 1..3), 40
labelers in all. Each export then runs in a fresh process (``export_run``, the same code the worker
and the CLI use) so its peak RSS is its own. Prints annotations/s and peak RSS per size; the goal is
at least 50k annotations/s with a peak RSS that does not grow with the export. ``cpu s`` is the
exporting process's own CPU time (the database server's work is not in it): on a shared, busy
machine ``annotations / cpu s`` is the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import ensure_database  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/bench_export"
LABELERS = 40
PER_TASK = 4
CANDIDATES = 3  # 3 pair tasks per prompt


def _setup(url: str, data_dir: str | None = None) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ.setdefault("DJANGO_DEBUG", "false")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if data_dir:
        os.environ["PREFHUB_DATA_DIR"] = data_dir
    import django

    django.setup()


def _seed(size: int, *, reseed: bool) -> str:
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from annotate.models import Annotation, Project
    from annotate.services.projects import membership_add, project_create

    slug = f"bench-export-{size}"
    project = Project.objects.filter(slug=slug).first()
    if (
        project is not None
        and not reseed
        and Annotation.objects.filter(task__project=project).count() >= size
    ):
        return slug
    if project is not None:
        project.delete()
    t0 = time.perf_counter()
    User = get_user_model()
    users = []
    for i in range(LABELERS):
        user, _ = User.objects.get_or_create(username=f"bench-labeler-{i}")
        users.append(user)
    with transaction.atomic():
        project = project_create(name=f"Bench export {size}", slug=slug, overlap=PER_TASK)
        for user in users:
            membership_add(project=project, user=user, role="labeler")
        prompts = -(-size // (CANDIDATES * PER_TASK))
        ids = "ARRAY[" + ",".join(str(u.pk) for u in users) + "]::bigint[]"
        with connection.cursor() as cur:
            cur.execute(
                """INSERT INTO annotate_prompt (project_id, external_id, messages, metadata, tags, created_at)
                SELECT %s, 'p' || g, jsonb_build_array(jsonb_build_object('role', 'user', 'content',
                       'Question number ' || g || ': how would you explain this to a new colleague?')),
                       '{}'::jsonb, '[]'::jsonb, now()
                FROM generate_series(1, %s) g""",
                [project.pk, prompts],
            )
            cur.execute(
                """INSERT INTO annotate_candidate (prompt_id, text, source, model_name, model_version,
                       sampling_params, external_id, metadata, finish_reason, created_at)
                SELECT p.id, 'Answer ' || k || ' to ' || p.external_id || '. ' || repeat('Some explanatory words. ', 8),
                       'imported', 'model-' || k, '', '{}'::jsonb, '', '{}'::jsonb, '', now()
                FROM annotate_prompt p, generate_series(0, %s) k WHERE p.project_id = %s""",
                [CANDIDATES - 1, project.pk],
            )
            cur.execute(
                """INSERT INTO annotate_task (project_id, prompt_id, target_labels, claims, is_gold, gold_choice, created_at)
                SELECT %s, p.id, %s, %s, false, '', now()
                FROM annotate_prompt p, generate_series(1, %s) k WHERE p.project_id = %s ORDER BY p.id, k""",
                [project.pk, PER_TASK, PER_TASK, CANDIDATES, project.pk],
            )
            # pair k of a prompt's tasks: (0,1), (0,2), (1,2)
            cur.execute(
                """WITH t AS (SELECT id, prompt_id, row_number() OVER (PARTITION BY prompt_id ORDER BY id) - 1 AS k
                              FROM annotate_task WHERE project_id = %s),
                        c AS (SELECT c.id, c.prompt_id, row_number() OVER (PARTITION BY c.prompt_id ORDER BY c.id) - 1 AS i
                              FROM annotate_candidate c JOIN annotate_prompt p ON p.id = c.prompt_id WHERE p.project_id = %s)
                INSERT INTO annotate_taskcandidate (task_id, candidate_id, slot)
                SELECT t.id, c.id, s.slot FROM t
                JOIN (VALUES (0, 0, 0), (0, 1, 1), (1, 0, 0), (1, 2, 1), (2, 1, 0), (2, 2, 1)) AS s(k, i, slot) ON s.k = t.k
                JOIN c ON c.prompt_id = t.prompt_id AND c.i = s.i""",
                [project.pk, project.pk],
            )
            cur.execute(
                f"""INSERT INTO annotate_annotation (task_id, labeler_id, source, choice, strength, ratings, rationale,
                       flagged, flag_reason, shown_order, time_spent_ms, created_at)
                SELECT t.id, ({ids})[((t.id + j * 7) %% {LABELERS}) + 1], 'human', v.choice,
                       CASE WHEN v.choice IN ('a', 'b') THEN 1 + (t.id + j) %% 3 END,
                       '{{}}'::jsonb, '', false, '', '[]'::jsonb, 1000 + (t.id * 13 + j) %% 60000, now()
                FROM annotate_task t CROSS JOIN generate_series(0, {PER_TASK - 1}) j
                CROSS JOIN LATERAL (SELECT CASE WHEN (t.id * 31 + j * 17) %% 10 < 7 THEN 'a'
                                                WHEN (t.id * 31 + j * 17) %% 10 < 9 THEN 'b' ELSE 'tie' END AS choice) v
                WHERE t.project_id = %s""",
                [project.pk],
            )
            cur.execute("ANALYZE annotate_annotation; ANALYZE annotate_task; ANALYZE annotate_taskcandidate")
    n = Annotation.objects.filter(task__project=project).count()
    print(f"seeded {slug}: {n} annotations in {time.perf_counter() - t0:.1f}s", flush=True)
    return slug


def _run_one(slug: str, fmt: str, file_type: str, options: dict) -> None:
    from annotate.models import Project
    from training.services.exports import export_create, export_run

    project = Project.objects.get(slug=slug)
    export = export_create(project=project, format=fmt, file_type=file_type, options=options, enqueue=False)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    export = export_run(export_id=export.pk)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    counts = export.manifest["counts"]
    print(
        json.dumps(
            {
                "annotations": counts["annotations_read"],
                "rows": counts["rows"],
                "seconds": round(seconds, 2),
                "cpu_seconds": round(cpu, 2),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "bytes": sum(f["bytes"] for f in export.manifest["files"].values()),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--format", default="trl")
    parser.add_argument("--file-type", default="jsonl", choices=["jsonl", "parquet"])
    parser.add_argument("--options", default='{"test_size": 0.1}', help="Export options as JSON.")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--run-one", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.run_one:
        _setup(args.database_url, os.environ.get("PREFHUB_DATA_DIR"))
        _run_one(args.run_one, args.format, args.file_type, json.loads(args.options))
        return

    ensure_database(args.database_url)
    _setup(args.database_url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    slugs = {size: _seed(size, reseed=args.reseed) for size in args.sizes}
    print(f"format={args.format} file_type={args.file_type} options={args.options}")
    print(
        f"{'annotations':>12} {'rows':>10} {'seconds':>8} {'ann/s':>10} {'peak RSS MB':>12} {'MB written':>11}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-export-") as data_dir:
        for size in args.sizes:
            env = {**os.environ, "PREFHUB_DATA_DIR": data_dir}
            cmd = [sys.executable, __file__, "--run-one", slugs[size], "--format", args.format,
                   "--file-type", args.file_type, "--options", args.options, "--database-url", args.database_url]  # fmt: skip
            out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            rate = r["annotations"] / r["seconds"] if r["seconds"] else float("inf")
            print(
                f"{r['annotations']:>12} {r['rows']:>10} {r['seconds']:>8.2f} {rate:>10.0f} "
                f"{r['peak_rss_mb']:>12.1f} {r['bytes'] / 1e6:>11.1f} {r['cpu_seconds']:>7.2f} "
                f"{r['annotations'] / max(r['cpu_seconds'], 1e-9):>10.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
