"""Next-task and submit over the API on PostgreSQL, at 10k and 1M tasks (issue 16).

Usage:
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hot .venv/bin/python bench/claim_submit.py \
        [--tasks 10000 1000000] [--labelers 1 4] [--requests 300] [--seconds 10] [--explain]

What it measures, in one run, per number of tasks:
- statements per request (``CaptureQueriesContext``; BEGIN/COMMIT counted apart) for one
  next-task and one submit;
- p50/p99 latency of ``POST /api/v1/labeling/<slug>/next`` and of ``.../submit`` (and the p50
  of the time spent in database calls, COMMIT excluded), through the
  whole Django stack (middleware, DRF, bearer-token authentication, throttling) with Django's
  test client (no HTTP server: the figures are the application's and the database's, not a web
  server's), one labeler looping claim + submit for ``--requests`` pairs;
- with ``--labelers N`` > 1: N processes (own connection each) looping claim + submit for
  ``--seconds``; pairs/s and latencies over all of them;
- with ``--explain``: EXPLAIN (ANALYZE, BUFFERS) of the claim statement, rolled back.

The database in DATABASE_URL is created if missing and migrated. Each size gets one project
(``bench-claim-<n>``) seeded with set-based SQL (``generate_series``) and ANALYZEd; a later run
reuses it after clearing its leases and annotations, so only the first run pays the 1M seed.

``main(sizes)`` prints; ``run(sizes)`` returns the figures as a dict (for combining with other
benches): ``{n_tasks: {"seed_s", "statements": {...}, "labelers": {n: {...}}, "explain"}}``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import database_ready, explain_claim, seed_prompts, seed_tasks  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
os.environ.setdefault("DJANGO_DEBUG", "false")
# the bench measures the labeling path, not the rate limits; one process per labeler, so the
# per-process token cache is as good as a shared one here (nothing is revoked)
os.environ.setdefault("RATE_CLAIM", "1000000/min")
os.environ.setdefault("RATE_SUBMIT", "1000000/min")
os.environ.setdefault("API_TOKEN_CACHE_SECONDS", "60")

TX_WORDS = {"BEGIN", "COMMIT", "ROLLBACK"}


def _seed(n_tasks: int, overlap: int) -> tuple[int, float]:
    """The project with n_tasks pairwise tasks (created once, reset on reuse): (id, seconds)."""
    from django.db import connection

    from annotate.models import Project
    from annotate.services.projects import project_create

    slug = f"bench-claim-{n_tasks}"
    t0 = time.perf_counter()
    project = Project.objects.filter(slug=slug).first()
    with connection.cursor() as cur:
        if project is not None and project.tasks.count() == n_tasks:
            cur.execute(
                "DELETE FROM annotate_annotation WHERE task_id IN (SELECT id FROM annotate_task WHERE project_id = %s)",
                [project.pk],
            )
            cur.execute(
                "DELETE FROM annotate_assignment WHERE task_id IN (SELECT id FROM annotate_task WHERE project_id = %s)",
                [project.pk],
            )
            cur.execute(
                "UPDATE annotate_task SET claims = 0 WHERE project_id = %s AND claims > 0", [project.pk]
            )
            cur.execute("ANALYZE annotate_task; ANALYZE annotate_assignment; ANALYZE annotate_annotation")
            print(f"  reused {n_tasks:,} tasks (reset in {time.perf_counter() - t0:.1f} s)", flush=True)
            return project.pk, time.perf_counter() - t0
        if project is not None:
            Project.objects.filter(pk=project.pk).delete()
        project = project_create(
            name=f"bench claim {n_tasks}", slug=slug, overlap=overlap, lease_ttl_seconds=600
        )
        seed_prompts(cur, project.pk, n_tasks, content="question ")
        cur.execute(
            """
            INSERT INTO annotate_candidate (prompt_id, text, source, model_name, model_version, sampling_params, external_id,
                                            metadata, finish_reason, created_at)
            SELECT p.id, 'answer ' || s || ' to ' || p.id, 'imported', 'model-' || s, '', '{}', '', '{}', '', now()
            FROM annotate_prompt p CROSS JOIN generate_series(0, 1) s WHERE p.project_id = %s
            """,
            [project.pk],
        )
        seed_tasks(cur, project.pk, target_labels=overlap)
        cur.execute(
            "ANALYZE annotate_prompt; ANALYZE annotate_candidate; ANALYZE annotate_task; "
            "ANALYZE annotate_taskcandidate; ANALYZE annotate_assignment; ANALYZE annotate_annotation"
        )
    seconds = time.perf_counter() - t0
    print(f"  seeded {n_tasks:,} tasks in {seconds:.1f} s", flush=True)
    return project.pk, seconds


def _labeler(project_id: int, tag: str) -> str:
    """A labeler in the project with an API token; returns the token's secret."""
    return _labeler_user(project_id, tag)[1]


def _labeler_user(project_id: int, tag: str):
    from django.contrib.auth import get_user_model

    from annotate.models import Project
    from annotate.services.projects import membership_add
    from annotate.services.tokens import token_create

    project = Project.objects.get(pk=project_id)
    user = get_user_model().objects.create_user(username=f"bench-{project_id}-{tag}-{time.time_ns()}")
    membership_add(project=project, user=user, role="labeler")
    return user, token_create(user=user, name="bench")[1]


def _client(secret: str):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


class _SqlClock:
    """Wall time spent inside database calls (``connection.execute_wrapper``)."""

    def __init__(self) -> None:
        self.ms = 0.0

    def __call__(self, execute, sql, params, many, context):
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.ms += (time.perf_counter() - t0) * 1000

    def take(self) -> float:
        ms, self.ms = self.ms, 0.0
        return ms


_SQL = _SqlClock()


def _pair(client, slug: str) -> tuple[float, float, float, float] | None:
    """One next-task + submit: (next ms, submit ms, next's SQL ms, submit's SQL ms), or None when
    no task is left. SQL time is the time spent in cursor calls (COMMIT not included)."""
    _SQL.take()
    t0 = time.perf_counter()
    resp = client.post(f"/api/v1/labeling/{slug}/next", {}, format="json")
    t1 = time.perf_counter()
    next_sql = _SQL.take()
    if resp.status_code == 204:
        return None
    assert resp.status_code == 200, resp.content
    lease = resp.json()
    sub = client.post(
        f"/api/v1/labeling/assignments/{lease['assignment_id']}/submit",
        {"choice": "left", "time_spent_ms": 1000},
        format="json",
    )
    t2 = time.perf_counter()
    assert sub.status_code == 201, sub.content
    return (t1 - t0) * 1000, (t2 - t1) * 1000, next_sql, _SQL.take()


def _count(fn) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        result = fn()
    sqls = [q["sql"].strip() for q in ctx.captured_queries]
    return {
        "statements": sum(1 for s in sqls if s.upper() not in TX_WORDS),
        "begin": sum(1 for s in sqls if s.upper() == "BEGIN"),
        "savepoints": sum(1 for s in sqls if s.upper().startswith("SAVEPOINT")),
        "result": result,
    }


def _statements(project_id: int, slug: str) -> dict:
    client = _client(_labeler(project_id, "count"))
    _pair(client, slug)  # warm: token cache, throttle keys, connection
    nxt = _count(lambda: client.post(f"/api/v1/labeling/{slug}/next", {}, format="json"))
    lease = nxt.pop("result").json()
    sub = _count(
        lambda: client.post(
            f"/api/v1/labeling/assignments/{lease['assignment_id']}/submit", {"choice": "left"}, format="json"
        )
    )
    sub.pop("result")
    return {"next": nxt, "submit": sub}


def _explain(project_id: int) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the claim statement for a fresh labeler, rolled back."""
    from annotate.models import Project

    user, _ = _labeler_user(project_id, "explain")
    return "\n".join(explain_claim(Project.objects.get(pk=project_id), user))


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _summary(pairs: list[tuple[float, float]], wall: float) -> dict:
    nxt = [p[0] for p in pairs]
    sub = [p[1] for p in pairs]
    return {
        "pairs": len(pairs),
        "pairs_per_s": len(pairs) / wall if wall else float("nan"),
        "next_p50_ms": _pct(nxt, 0.5),
        "next_p99_ms": _pct(nxt, 0.99),
        "submit_p50_ms": _pct(sub, 0.5),
        "submit_p99_ms": _pct(sub, 0.99),
        "next_sql_p50_ms": _pct([p[2] for p in pairs], 0.5),
        "submit_sql_p50_ms": _pct([p[3] for p in pairs], 0.5),
        "load_avg_1m": os.getloadavg()[0],
    }


def _loop(secret: str, slug: str, *, requests: int | None, seconds: float | None, out=None):
    from django.db import connection, connections

    connections.close_all()
    if _SQL not in connection.execute_wrappers:
        connection.execute_wrappers.append(_SQL)
    client = _client(secret)
    for _ in range(5):  # warm-up
        _pair(client, slug)
    pairs = []
    deadline = time.perf_counter() + seconds if seconds else None
    while (requests is None or len(pairs) < requests) and (
        deadline is None or time.perf_counter() < deadline
    ):
        pair = _pair(client, slug)
        if pair is None:
            break
        pairs.append(pair)
    if out is not None:
        out.put(pairs)
        connections.close_all()
    return pairs


def _one_labeler(project_id: int, slug: str, requests: int) -> dict:
    secret = _labeler(project_id, "one")
    t0 = time.perf_counter()
    pairs = _loop(secret, slug, requests=requests, seconds=None)
    return _summary(pairs, time.perf_counter() - t0)


def _many_labelers(project_id: int, slug: str, n: int, seconds: float) -> dict:
    from django.db import connections

    secrets = [_labeler(project_id, f"many{n}-{i}") for i in range(n)]
    connections.close_all()
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_loop, args=(s, slug), kwargs={"requests": None, "seconds": seconds, "out": out})
        for s in secrets
    ]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return _summary([x for r in results for x in r], time.perf_counter() - t0)


def run(
    sizes: list[int],
    *,
    labelers: list[int] = (1, 4),
    requests: int = 300,
    seconds: float = 10.0,
    overlap: int = 3,
    explain: bool = False,
    echo=print,
) -> dict:
    """The figures for each size, as a dict (see the module docstring)."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit(
            "Set DATABASE_URL to a PostgreSQL database, e.g. postgres://postgres@127.0.0.1:5432/bench_claim"
        )
    database_ready()
    import django

    django.setup()
    from annotate.models import Project

    figures: dict = {}
    for n_tasks in sizes:
        echo(f"tasks={n_tasks:,}", flush=True)
        project_id, seed_s = _seed(n_tasks, overlap)
        slug = Project.objects.get(pk=project_id).slug
        entry: dict = {"seed_s": seed_s, "statements": _statements(project_id, slug), "labelers": {}}
        st = entry["statements"]
        echo(
            f"  statements/request: next-task {st['next']['statements']} ({st['next']['begin']} BEGIN, "
            f"{st['next']['savepoints']} savepoints), submit {st['submit']['statements']} "
            f"({st['submit']['begin']} BEGIN, {st['submit']['savepoints']} savepoints)",
            flush=True,
        )
        if explain:
            entry["explain"] = _explain(project_id)
            echo(
                "  EXPLAIN (ANALYZE, BUFFERS) of the claim:\n    " + entry["explain"].replace("\n", "\n    ")
            )
        for n in labelers:
            fig = (
                _one_labeler(project_id, slug, requests)
                if n == 1
                else _many_labelers(project_id, slug, n, seconds)
            )
            entry["labelers"][n] = fig
            echo(
                f"  labelers={n:>2}  pairs={fig['pairs']:>5} ({fig['pairs_per_s']:6.1f}/s)  "
                f"next-task p50={fig['next_p50_ms']:6.2f} ms p99={fig['next_p99_ms']:6.2f} ms  "
                f"submit p50={fig['submit_p50_ms']:6.2f} ms p99={fig['submit_p99_ms']:6.2f} ms  "
                f"(in SQL, p50: next {fig['next_sql_p50_ms']:.2f} ms, submit {fig['submit_sql_p50_ms']:.2f} ms; "
                f"load avg {fig['load_avg_1m']:.1f})",
                flush=True,
            )
        figures[n_tasks] = entry
    return figures


def main(sizes: list[int] | None = None, argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--labelers", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--requests", type=int, default=300, help="claim+submit pairs for one labeler")
    parser.add_argument("--seconds", type=float, default=10.0, help="per configuration with several labelers")
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the claim (rolled back)")
    parser.add_argument(
        "--imports",
        type=int,
        nargs="*",
        default=[10_000, 100_000],
        help="then import this many two-response prompts over the API (bench/import_api.py); none: skip",
    )
    args = parser.parse_args(argv if argv is not None else ([] if sizes is not None else None))
    print(
        f"cpu cores: {os.cpu_count()}; Django test client over the whole stack (bearer token); "
        f"one labeler: {args.requests} pairs; several: one process each for {args.seconds:.0f} s",
        flush=True,
    )
    figures = run(
        sizes or args.tasks,
        labelers=args.labelers,
        requests=args.requests,
        seconds=args.seconds,
        overlap=args.overlap,
        explain=args.explain,
    )
    imports = [n for n in args.imports if n > 0]
    if imports:
        from bench.import_api import run_import_api_bench

        print(f"import over the API: {', '.join(f'{n:,}' for n in imports)} prompts", flush=True)
        figures["import_api"] = run_import_api_bench(tuple(imports))
    _side_by_side(figures)
    return figures


def _side_by_side(figures: dict) -> None:
    """One table of what the issue asks for, from the figures of this run."""
    print("\nsummary (this run)")
    print(
        f"  {'tasks':>10}  {'labelers':>8}  {'stmts next/submit':>17}  {'next p50/p99 ms':>16}  {'submit p50/p99 ms':>18}"
    )
    for n_tasks, entry in figures.items():
        if not isinstance(n_tasks, int):
            continue
        st = entry["statements"]
        for n, fig in entry["labelers"].items():
            print(
                f"  {n_tasks:>10,}  {n:>8}  {st['next']['statements']:>8}/{st['submit']['statements']:<8}  "
                f"{fig['next_p50_ms']:7.2f}/{fig['next_p99_ms']:<8.2f}  {fig['submit_p50_ms']:8.2f}/{fig['submit_p99_ms']:<9.2f}"
            )
    for r in figures.get("import_api", {}).get("imports", []):
        print(
            f"  import over the API: {r['prompts']:,} prompts in {r['seconds']:.1f} s = {r['rows_per_s']:,} prompts/s "
            f"(peak RSS {r['peak_rss_mb']:.0f} MB)"
        )


if __name__ == "__main__":
    main()
