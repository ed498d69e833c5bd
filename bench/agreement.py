#!/usr/bin/env python
"""Agreement figures: Krippendorff's alpha on 20 coders x 100k units, and the full project report
on a project with 1M annotations read from PostgreSQL.

    python bench/agreement.py                      # both (PostgreSQL on 127.0.0.1 as postgres)
    python bench/agreement.py --skip-db            # alpha only
    python bench/agreement.py --db-url postgres://postgres@127.0.0.1:5432/bench_agreement --reseed

The report part uses a dedicated database (created when missing, then migrated),
bulk-loads a synthetic pairwise project with COPY (once; reused on later runs unless --reseed), and
times ``annotate.services.reports.report_build`` end to end: reading the rows with
``values_list(...).iterator()`` into NumPy arrays, and every statistic and table after that.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import ensure_database  # noqa: E402

BENCH_SLUG = "bench-agreement-1m"


def bench_alpha(coders: int, units: int, repeats: int = 3) -> None:
    from annotate.agreement import LEVELS, krippendorff_alpha

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 5, units)
    data = np.where(rng.random((coders, units)) < 0.7, truth, rng.integers(0, 5, (coders, units))).astype(
        float
    )
    data[rng.random(data.shape) < 0.2] = np.nan  # 20% missing
    print(
        f"Krippendorff's alpha, {coders} coders x {units:,} units, 5 values, 20% missing (best of {repeats}):"
    )
    for level in LEVELS:
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            value = krippendorff_alpha(data, level)
            best = min(best, time.perf_counter() - t0)
        print(f"  {level:<9} alpha={value:.4f}  {best * 1000:8.1f} ms")


def _copy(cursor, table: str, columns: list[str], rows, total: int, desc: str) -> None:
    from tqdm import tqdm

    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with cursor.copy(sql) as copy, tqdm(total=total, desc=desc, unit="row", mininterval=1.0) as bar:
        for i, row in enumerate(rows, 1):
            copy.write_row(row)
            if i % 50_000 == 0:
                bar.update(50_000)
        bar.update(total - bar.n)


def seed(annotations: int, labels_per_task: int, labelers: int, models: int) -> None:
    """A pairwise project: prompts with 4 candidates from random models, 4 pairs per prompt,
    ``labels_per_task`` labelers per task, a helpfulness rating per response, 2% gold tasks."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone

    from annotate.models import Dimension, Guideline, Project
    from annotate.services.tasks import TaskSpec, tasks_bulk_create

    rng = np.random.default_rng(1)
    n_tasks = annotations // labels_per_task
    n_prompts = n_tasks // 4
    n_tasks = n_prompts * 4
    User = get_user_model()
    with transaction.atomic():
        Project.objects.filter(slug=BENCH_SLUG).delete()
        project = Project.objects.create(
            name="Bench: 1M annotations", slug=BENCH_SLUG, overlap=labels_per_task
        )
        Dimension.objects.create(project=project, key="helpfulness", label="Helpfulness")
        g1 = Guideline.objects.create(project=project, version=1, body="v1")
        g2 = Guideline.objects.create(project=project, version=2, body="v2")
        users = []
        for i in range(labelers):
            user, _ = User.objects.get_or_create(username=f"bench-labeler-{i:03d}")
            users.append(user.pk)
        users = np.array(users)
        now = timezone.now()
        with connection.cursor() as c:
            c.execute("SELECT COALESCE(MAX(id), 0) FROM annotate_prompt")
            p0 = c.fetchone()[0] + 1
            c.execute("SELECT COALESCE(MAX(id), 0) FROM annotate_candidate")
            c0 = c.fetchone()[0] + 1
            raw = c.cursor
            prompt_ids = np.arange(p0, p0 + n_prompts)
            _copy(
                raw,
                "annotate_prompt",
                ["id", "project_id", "external_id", "messages", "metadata", "tags", "created_at"],
                (
                    (
                        int(pid),
                        project.pk,
                        f"b{i}",
                        json.dumps([{"role": "user", "content": f"Question {i}?"}]),
                        "{}",
                        "[]",
                        now,
                    )
                    for i, pid in enumerate(prompt_ids)
                ),
                n_prompts,
                "prompts",
            )
            cand_models = rng.integers(0, models, (n_prompts, 4))
            cand_ids = np.arange(c0, c0 + n_prompts * 4).reshape(n_prompts, 4)
            _copy(
                raw,
                "annotate_candidate",
                [
                    "id",
                    "prompt_id",
                    "text",
                    "source",
                    "model_name",
                    "model_version",
                    "sampling_params",
                    "external_id",
                    "metadata",
                    "finish_reason",
                    "created_at",
                ],
                (
                    (
                        int(cand_ids[i, j]),
                        int(prompt_ids[i]),
                        f"Answer {j}",
                        "imported",
                        f"model-{cand_models[i, j]}",
                        "",
                        "{}",
                        "",
                        "{}",
                        "",
                        now,
                    )
                    for i in range(n_prompts)
                    for j in range(4)
                ),
                n_prompts * 4,
                "candidates",
            )
            pairs = [(0, 1), (2, 3), (0, 2), (1, 3)]
            slot_a = np.array([cand_ids[i, a] for i in range(n_prompts) for a, _ in pairs])
            slot_b = np.array([cand_ids[i, b] for i in range(n_prompts) for _, b in pairs])
            gold = rng.random(n_tasks) < 0.02
            task_ids = tasks_bulk_create(
                project=project,
                specs=(
                    TaskSpec(
                        prompt_id=int(prompt_ids[t // 4]),
                        candidate_ids=[int(slot_a[t]), int(slot_b[t])],
                        is_gold=bool(gold[t]),
                        gold_choice="a" if gold[t] else "",
                    )
                    for t in range(n_tasks)
                ),
                ids_only=True,
            )
            # every slot filled: the labels below
            c.execute("UPDATE annotate_task SET claims = target_labels WHERE project_id = %s", [project.pk])
            # labels: a latent quality per model, labeler noise, one left-leaning labeler
            quality = rng.normal(0, 0.6, models)
            model_a = cand_models.reshape(-1)[
                np.array([i * 4 + a for i in range(n_prompts) for a, _ in pairs])
            ]
            model_b = cand_models.reshape(-1)[
                np.array([i * 4 + b for i in range(n_prompts) for _, b in pairs])
            ]
            p_a = 1 / (1 + np.exp(quality[model_b] - quality[model_a]))
            labs = np.argsort(rng.random((n_tasks, labelers)), axis=1)[:, :labels_per_task]
            start = now.timestamp() - 60 * 86400

            def rows():
                for t in range(n_tasks):
                    gid = g1.pk if t < n_tasks // 2 else g2.pk
                    for lab in labs[t]:
                        r = rng.random()
                        left_first = rng.random() < 0.5
                        shown = (
                            [int(slot_a[t]), int(slot_b[t])]
                            if left_first
                            else [int(slot_b[t]), int(slot_a[t])]
                        )
                        if lab == 0:
                            choice = "a" if left_first else "b"
                        elif r < 0.08:
                            choice = "tie"
                        elif r < 0.1:
                            choice = "both_bad"
                        else:
                            choice = "a" if rng.random() < p_a[t] else "b"
                        score_a, score_b = rng.integers(1, 6, 2)
                        ratings = json.dumps(
                            {"helpfulness": {str(slot_a[t]): int(score_a), str(slot_b[t]): int(score_b)}}
                        )
                        created = start + (t / n_tasks) * 59 * 86400 + rng.random() * 3600
                        yield (
                            int(task_ids[t]),
                            int(users[lab]),
                            "human",
                            choice,
                            ratings,
                            "",
                            False,
                            "",
                            json.dumps(shown),
                            gid,
                            int(rng.integers(3000, 90000)),
                            time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(created)),
                        )

            _copy(
                raw,
                "annotate_annotation",
                [
                    "task_id",
                    "labeler_id",
                    "source",
                    "choice",
                    "ratings",
                    "rationale",
                    "flagged",
                    "flag_reason",
                    "shown_order",
                    "guideline_id",
                    "time_spent_ms",
                    "created_at",
                ],
                rows(),
                n_tasks * labels_per_task,
                "annotations",
            )
            for table in ("annotate_prompt", "annotate_candidate"):
                c.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"
                )
            c.execute("ANALYZE")
    print(f"seeded {n_tasks:,} tasks and {n_tasks * labels_per_task:,} annotations")


def bench_report(url: str, annotations: int, reseed: bool) -> None:
    ensure_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    from annotate.models import Annotation, Project
    from annotate.services.reports import report_build

    call_command("migrate", verbosity=0)
    project = Project.objects.filter(slug=BENCH_SLUG).first()
    have = Annotation.objects.filter(task__project=project).count() if project else 0
    if reseed or have < annotations * 0.99:
        seed(annotations, labels_per_task=5, labelers=60, models=12)
        project = Project.objects.get(slug=BENCH_SLUG)
        have = Annotation.objects.filter(task__project=project).count()
    print(
        f"Full report from PostgreSQL ({urlparse(url).path.lstrip('/')}), project with {have:,} annotations:"
    )
    for run in (1, 2):
        t0, c0 = time.perf_counter(), time.process_time()
        report = report_build(project)
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
        tm = report["timings"]
        print(
            f"  run {run}: total {total:6.2f} s  (read into arrays {tm['load_s']:.2f} s, statistics+tables "
            f"{tm['compute_s']:.2f} s; this process used {cpu:.2f} s of CPU; load average {os.getloadavg()[0]:.1f} "
            f"on {os.cpu_count()} CPUs)"
        )
    ov = report["overall"]
    size = len(json.dumps(report).encode())
    print(
        f"  overall alpha={ov['krippendorff_alpha']:.4f} over {ov['items']:,} tasks; "
        f"{len(report['labelers'])} labelers; {len(report['leaderboard']['rows'])} models; snapshot JSON {size / 1024:.0f} KiB"
    )
    buf = io.StringIO()
    for r in report["leaderboard"]["rows"][:3]:
        buf.write(f"{r['model']} {r['elo']:.0f} [{r['elo_low']:.0f}, {r['elo_high']:.0f}]; ")
    print(f"  leaderboard top 3: {buf.getvalue()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--coders", type=int, default=20)
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--annotations", type=int, default=1_000_000)
    parser.add_argument(
        "--db-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_agreement"),
    )
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--skip-db", action="store_true")
    args = parser.parse_args()
    bench_alpha(args.coders, args.units)
    if not args.skip_db:
        bench_report(args.db_url, args.annotations, args.reseed)


if __name__ == "__main__":
    main()
