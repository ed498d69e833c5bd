#!/usr/bin/env python
"""Task order "active" at scale on PostgreSQL: the next-task query's plan and the priority refresh.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<db> .venv/bin/python bench/task_order.py \
        [--tasks 100000] [--models 20] [--votes 20000]

Migrates the database named in DATABASE_URL, seeds a pairwise project with ``--tasks`` tasks over
``--models`` models (set-based SQL) and ``--votes`` annotations, switches it to task order
"active", and prints:

* the time of ``task_priorities_refresh`` (first run: every open task changes; second run: none);
* ``EXPLAIN (ANALYZE, BUFFERS)`` of the claim statement exactly as ``task_claim_next`` runs it on
  PostgreSQL (``leasing.CLAIM_ORDER``: claims, priority DESC, id; rolled back), for a fresh
  labeler and for one who already labeled the project's first tasks, so the index it walks and the
  rows it reads are visible.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import explain_claim, seed_prompts, seed_tasks  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ.setdefault("DJANGO_DEBUG", "false")


def _seed(n_tasks: int, n_models: int, n_votes: int) -> tuple[int, int]:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from annotate.services.projects import membership_add, project_create

    project = project_create(name=f"bench order {time.time_ns()}", overlap=3)
    user = get_user_model().objects.create_user(username=f"bench-voter-{time.time_ns()}")
    membership_add(project=project, user=user, role="labeler")
    t0 = time.perf_counter()
    with connection.cursor() as cur:
        seed_prompts(cur, project.pk, n_tasks, content="q ")
        # two candidates per prompt from two different models: (i, i + 1 + (id / m) % (m - 1)) mod m
        cur.execute(
            """
            INSERT INTO annotate_candidate (prompt_id, text, source, model_name, model_version, sampling_params,
                                            external_id, metadata, finish_reason, created_at)
            SELECT p.id, 'answer', 'imported',
                   'model-' || CASE WHEN s = 0 THEN p.id %% %s ELSE (p.id + 1 + (p.id / %s) %% (%s - 1)) %% %s END,
                   '', '{}', '', '{}', '', now()
            FROM annotate_prompt p CROSS JOIN generate_series(0, 1) s WHERE p.project_id = %s
            """,
            [n_models, n_models, n_models, n_models, project.pk],
        )
        seed_tasks(cur, project.pk, target_labels=project.overlap)
        # votes: the lower model number wins 70 %% of the time (a known order to find)
        cur.execute(
            """
            INSERT INTO annotate_annotation (task_id, labeler_id, source, choice, ratings, rationale, flagged,
                                             flag_reason, created_at)
            SELECT t.id, %s, 'human', CASE WHEN random() < 0.7 THEN 'a' ELSE 'b' END, '{}', '', false, '', now()
            FROM annotate_task t WHERE t.project_id = %s ORDER BY t.id LIMIT %s
            """,
            [user.pk, project.pk, n_votes],
        )
        cur.execute(
            "UPDATE annotate_task SET claims = 1 WHERE id IN "
            "(SELECT task_id FROM annotate_annotation WHERE labeler_id = %s)",
            [user.pk],
        )
        cur.execute("ANALYZE annotate_task; ANALYZE annotate_taskcandidate; ANALYZE annotate_annotation")
    print(
        f"seeded {n_tasks:,} tasks, {n_models} models, {n_votes:,} votes in {time.perf_counter() - t0:.1f} s"
    )
    return project.pk, user.pk


def _explain(label: str, project, labeler) -> None:
    print(f"\n-- claim statement, {label}:")
    for line in explain_claim(project, labeler):
        print("   " + line)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--models", type=int, default=20)
    ap.add_argument("--votes", type=int, default=20_000)
    args = ap.parse_args(argv)
    import logging

    import django

    logging.disable(logging.INFO)

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from annotate.models import Project, Task, TaskOrder
    from annotate.services.task_order import task_priorities_refresh

    project_id, voter_id = _seed(args.tasks, args.models, args.votes)
    Project.objects.filter(pk=project_id).update(task_order=TaskOrder.ACTIVE)
    project = Project.objects.get(pk=project_id)
    for run in ("first", "second"):
        t0 = time.perf_counter()
        changed = task_priorities_refresh(project_id=project_id)
        print(
            f"task_priorities_refresh ({run} run): {changed:,} tasks changed in {time.perf_counter() - t0:.2f} s"
        )
    values = Task.objects.filter(project=project).values("priority").distinct().count()
    print(f"distinct priorities: {values}")
    from django.db import connection

    with connection.cursor() as cur:  # 1,000 more votes, on tasks nobody voted on yet
        cur.execute(
            """
            INSERT INTO annotate_annotation (task_id, labeler_id, source, choice, ratings, rationale, flagged,
                                             flag_reason, created_at)
            SELECT t.id, %s, 'human', CASE WHEN random() < 0.7 THEN 'a' ELSE 'b' END, '{}', '', false, '', now()
            FROM annotate_task t WHERE t.project_id = %s ORDER BY t.id DESC LIMIT 1000
            """,
            [voter_id, project_id],
        )
    t0 = time.perf_counter()
    changed = task_priorities_refresh(project_id=project_id)
    print(
        f"task_priorities_refresh after 1,000 more votes: {changed:,} tasks changed in {time.perf_counter() - t0:.2f} s"
    )
    with connection.cursor() as cur:
        cur.execute("ANALYZE annotate_task")
    fresh = get_user_model().objects.create_user(username=f"bench-fresh-{time.time_ns()}")
    _explain("a fresh labeler (claims 0 tasks first)", project, fresh)
    _explain("the labeler who voted on the first tasks", project, get_user_model().objects.get(pk=voter_id))


if __name__ == "__main__":
    main()
