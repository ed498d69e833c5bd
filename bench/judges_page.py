#!/usr/bin/env python
"""The Judges page of a project with many judged tasks, on PostgreSQL: what its re-route
confirmation costs each time a manager opens the page.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/<db> .venv/bin/python bench/judges_page.py \
        [--tasks 100000] [--human-share 0.05]

Seeds (set-based) a pairwise project with ``--tasks`` tasks, one judge with a consistent verdict on
every task, routing decisions (90 % to the judge, 10 % to humans) and human labels on
``--human-share`` of the tasks, then prints the time of ``reroute_preview`` (the counts the
confirmation shows) and of the whole page (GET as the manager), three times each.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import ensure_database, seed_prompts, seed_tasks  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ.setdefault("DJANGO_DEBUG", "false")


def _seed(n_tasks: int, human_share: float):
    from django.contrib.auth import get_user_model
    from django.db import connection

    from annotate.judges.services import judge_create
    from annotate.models import JudgeJob
    from annotate.services.projects import membership_add, project_create, project_update_settings
    from generation.models import ModelEndpoint

    stamp = time.time_ns()
    t0 = time.perf_counter()
    manager = get_user_model().objects.create_user(username=f"bench-judges-boss-{stamp}")
    human = get_user_model().objects.create_user(username=f"bench-judges-human-{stamp}")
    project = project_create(name=f"bench judges {stamp}", actor=manager, overlap=1)
    membership_add(project=project, user=human, role="labeler")
    project_update_settings(project=project, judge_routing=True, judge_audit_share=0.1, judge_min_strength=1)
    endpoint = ModelEndpoint.objects.create(
        name=f"bench-judge-{stamp}",
        backend="openai",
        model="m",
        project=project,
        config={"base_url": "http://x"},
    )
    judge = judge_create(project=project, name="bench", endpoint=endpoint, actor=manager)
    job = JudgeJob.objects.create(project=project, judge=judge, rubric="bench", state="done")
    with connection.cursor() as cur:
        seed_prompts(cur, project.pk, n_tasks, content="q ")
        cur.execute(
            """
            INSERT INTO annotate_candidate (prompt_id, text, source, model_name, model_version, sampling_params,
                                            external_id, metadata, finish_reason, created_at)
            SELECT p.id, 'answer ' || s, 'imported', 'model-' || s, '', '{}', '', '{}', '', now()
            FROM annotate_prompt p CROSS JOIN generate_series(0, 1) s WHERE p.project_id = %s
            """,
            [project.pk],
        )
        seed_tasks(cur, project.pk, target_labels=1)
        cur.execute(
            """
            INSERT INTO annotate_judgesuggestion (job_id, judge_id, task_id, status, choice, strength, scores,
                rationale, verdict_first, verdict_swapped, raw_first, raw_swapped, error, transient, model_name,
                model_version, sampling, seconds, created_at)
            SELECT %s, %s, t.id, 'ok', 'a', 3, '{}', '', 'a', 'a', '', '', '', false, 'm', '', '{}', 0, now()
            FROM annotate_task t WHERE t.project_id = %s
            """,
            [job.pk, judge.pk, project.pk],
        )
        cur.execute(
            """
            INSERT INTO annotate_routingdecision (project_id, task_id, job_id, route, reason, details, created_at)
            SELECT %s, t.id, NULL, CASE WHEN t.id %% 10 = 0 THEN 'human' ELSE 'judge' END,
                   CASE WHEN t.id %% 10 = 0 THEN 'audit' ELSE 'confident' END, '{}', now()
            FROM annotate_task t WHERE t.project_id = %s
            """,
            [project.pk, project.pk],
        )
        cur.execute(
            """
            INSERT INTO annotate_annotation (task_id, labeler_id, source, choice, ratings, rationale, flagged,
                                             flag_reason, pre_annotated, created_at)
            SELECT t.id, %s, 'human', 'a', '{}', '', false, '', false, now()
            FROM annotate_task t WHERE t.project_id = %s AND random() < %s
            """,
            [human.pk, project.pk, human_share],
        )
        cur.execute("ANALYZE annotate_task; ANALYZE annotate_judgesuggestion; ANALYZE annotate_routingdecision;"
                    " ANALYZE annotate_annotation")  # fmt: skip
    print(f"seeded {n_tasks:,} judged tasks in {time.perf_counter() - t0:.1f} s")
    return project, manager


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--human-share", type=float, default=0.05)
    ap.add_argument("--reroute", action="store_true", help="Also time the re-route itself (once).")
    args = ap.parse_args(argv)
    import logging

    import django

    logging.disable(logging.INFO)
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        ensure_database(os.environ["DATABASE_URL"])
    django.setup()
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    from annotate.judges.selectors import reroute_preview

    project, manager = _seed(args.tasks, args.human_share)
    for run in range(3):
        t0 = time.perf_counter()
        preview = reroute_preview(project=project)
        print(f"reroute_preview, run {run + 1}: {time.perf_counter() - t0:.3f} s  {preview}")
    client = Client()
    client.force_login(manager)
    for run in range(3):
        t0 = time.perf_counter()
        response = client.get(f"/projects/{project.slug}/judges/")
        assert response.status_code == 200, response.status_code
        print(
            f"Judges page GET, run {run + 1}: {time.perf_counter() - t0:.3f} s ({len(response.content):,} bytes)"
        )
    if args.reroute:
        from annotate.judges.services import routing_reroute

        t0 = time.perf_counter()
        project.refresh_from_db()
        outcome = routing_reroute(project=project, actor=manager)
        print(f"routing_reroute: {time.perf_counter() - t0:.1f} s  {outcome.audit_details()}")


if __name__ == "__main__":
    main()
