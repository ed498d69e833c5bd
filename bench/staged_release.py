"""What staging costs: the automatic checks written at each batch commit, the job page's summary
and samples, and a release of the passing candidates, on PostgreSQL.

    DATABASE_URL=postgres://... python bench/staged_release.py [--prompts 2000] [--endpoints 2] [--k 4]
        [--batch-size 64]

A fake backend answers instantly (a mix of passing, duplicate, empty, control-character and
length-cut responses), so the figures are the platform's own work: batch commits with and without
the checks (the checks' share of a commit), the summary and samples queries, and the release. The
database is migrated and the bench's project is deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    os.environ.setdefault("DJANGO_DEBUG", "false")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


class Backend:
    model_name = model_version = "bench"

    def generate(self, conversations, params):
        from generation.backends.base import Generation

        out = []
        for conv in conversations:
            n = int(conv[-1]["content"].split()[-1])
            gens = []
            for i in range(params.n):
                kind = (n + i) % 10
                text = {0: "", 1: "same answer", 2: "same answer", 3: "bell \x07"}.get(
                    kind, f"answer {n}/{i}"
                )
                length = kind == 4
                gens.append(
                    Generation(
                        text=text,
                        finish_reason="length" if length else "stop",
                        completion_tokens=params.max_new_tokens if length else 10,
                        native_finish_reason="length" if length else "stop",
                    )
                )
            out.append(gens)
        return out


def _run(prompts: int, endpoints: int, k: int, batch_size: int, *, checks: bool) -> dict:
    from annotate.models import Prompt
    from annotate.services.projects import project_create
    from generation import backends, selectors, services
    from generation.models import GenerationBatch

    backends.get_backend = lambda endpoint: Backend()
    original = services._checks_write
    if not checks:
        services._checks_write = lambda **kwargs: None
    project = project_create(name=f"bench staged {time.time_ns()}", kind="pairwise", overlap=1, dimensions=[])
    try:
        Prompt.objects.bulk_create(
            [
                Prompt(project=project, messages=[{"role": "user", "content": f"q {i}"}])
                for i in range(prompts)
            ]
        )
        eps = [
            services.endpoint_create(
                name=f"bench-{project.pk}-{e}", backend="transformers", model=f"/m{e}", project=project
            )
            for e in range(endpoints)
        ]
        job = services.job_create(project=project, endpoints=eps, k=k, batch_size=batch_size, enqueue=False)
        commits = []
        for batch_id in (
            GenerationBatch.objects.filter(job=job).order_by("index").values_list("pk", flat=True)
        ):
            start = time.perf_counter()
            services.batch_run(batch_id=batch_id)
            commits.append(time.perf_counter() - start)
        job.refresh_from_db()
        result = {"batches": len(commits), "commit_ms_median": 1000 * statistics.median(commits)}
        if checks:
            start = time.perf_counter()
            selectors.job_staged_summary(job=job)
            result["summary_ms"] = 1000 * (time.perf_counter() - start)
            start = time.perf_counter()
            selectors.job_staged_samples(job=job)
            result["samples_ms"] = 1000 * (time.perf_counter() - start)
            start = time.perf_counter()
            job = services.job_release(job=job, which="passing")
            result["release_s"] = time.perf_counter() - start
            result["tasks"] = job.released_tasks
            result["excluded"] = job.excluded_candidates
        return result
    finally:
        services._checks_write = original
        project.delete()  # with its job and the job's responses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--endpoints", type=int, default=2)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    _setup()
    candidates = args.prompts * args.endpoints * args.k
    print(
        f"{args.prompts} prompts x {args.endpoints} endpoints x k={args.k} = {candidates:,} candidates, "
        f"batches of {args.batch_size} prompts"
    )
    plain = _run(args.prompts, args.endpoints, args.k, args.batch_size, checks=False)
    staged = _run(args.prompts, args.endpoints, args.k, args.batch_size, checks=True)
    per_batch = args.batch_size * args.k
    print(
        f"batch commit without checks: {plain['commit_ms_median']:.1f} ms median ({plain['batches']} batches)"
    )
    print(
        f"batch commit with checks:    {staged['commit_ms_median']:.1f} ms median "
        f"(+{staged['commit_ms_median'] - plain['commit_ms_median']:.1f} ms for {per_batch} candidates)"
    )
    print(f"staged summary: {staged['summary_ms']:.1f} ms; samples: {staged['samples_ms']:.1f} ms")
    print(
        f"release passing: {staged['release_s']:.2f} s -> {staged['tasks']:,} tasks, "
        f"{staged['excluded']:,} candidates left out ({candidates / staged['release_s']:,.0f} candidates/s)"
    )


if __name__ == "__main__":
    main()
