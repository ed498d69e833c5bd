"""Generate candidates for a project's prompts (staged; or released into tasks with --release).

    python manage.py generate --project P --endpoint E [--endpoint E2] --k 4 [--inline] [--release passing]

The candidates stay staged until released on the job page or through the API
(POST /api/v1/generation/jobs/<id>/release); --release passing|all releases them when the job ends.

Default: create the job, enqueue its batches for the Celery "generation" queue and follow its
progress until it ends (Ctrl-C stops following, not the job). --inline runs every batch in this
process instead (no worker needed). --resume JOB re-enqueues a job's pending batches.
"""

from __future__ import annotations

import json
import sys
import time

from django.core.management.base import CommandError
from tqdm import tqdm

from annotate import selectors as annotate_selectors
from core.cli import ServiceCommand
from generation import selectors, services
from generation.models import GenerationJob, JobState

DEFAULT_K = 2
#: The options that describe a new job; --resume takes a job as it was created and refuses them.
NEW_JOB_OPTIONS = (
    "project", "endpoint", "k", "filter", "task_mode", "pairs_per_prompt", "batch_size", "release",
    "temperature", "top_p", "top_k", "max_new_tokens", "seed", "stop",
)  # fmt: skip


class Command(ServiceCommand):
    field_options = {"prompt_filter": "--filter", "endpoints": "--endpoint", "auto_release": "--release"}
    help = "Sample k responses per prompt from one or more model endpoints (staged, or released into tasks)."

    def add_arguments(self, parser):
        parser.add_argument("--project", help="project slug")
        parser.add_argument(
            "--endpoint", action="append", default=[], help="endpoint name (repeat for several)"
        )
        parser.add_argument("--k", type=int, help=f"samples per prompt per endpoint (default {DEFAULT_K})")
        parser.add_argument(
            "--filter",
            help="all (default) | untagged | tag:NAME | ids:q1,q7 (imported ids or prompt numbers)",
        )
        parser.add_argument("--task-mode", choices=["all_pairs", "sampled_pairs", "ranking", "none"])
        parser.add_argument("--pairs-per-prompt", type=int)
        parser.add_argument(
            "--batch-size", type=int, help="prompts per worker task (default: up to 16, at least 4 batches)"
        )
        parser.add_argument(
            "--release",
            choices=["staged", "passing", "all"],
            help="when the job ends: stay staged (default), release the passing candidates, or all",
        )
        parser.add_argument("--temperature", type=float)
        parser.add_argument("--top-p", type=float)
        parser.add_argument("--top-k", type=int)
        parser.add_argument("--max-new-tokens", type=int)
        parser.add_argument("--seed", type=int)
        parser.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
        parser.add_argument("--inline", action="store_true", help="run the batches in this process")
        parser.add_argument(
            "--resume", type=int, metavar="JOB", help="re-enqueue a job's pending batches and follow it"
        )
        parser.add_argument("--no-follow", action="store_true", help="enqueue and return at once")
        parser.add_argument("--poll", type=float, default=1.0, help="seconds between progress checks")

    def handle(self, *args, **opts):
        if not 0 < opts["poll"] <= 3600:  # also refuses nan
            raise CommandError(
                f"--poll: seconds between checks, above 0 and at most 3600 (got {opts['poll']})."
            )
        if opts["resume"] is not None:
            given = [f"--{key.replace('_', '-')}" for key in NEW_JOB_OPTIONS if opts[key] not in (None, [])]
            if given:
                raise CommandError(
                    f"--resume: {', '.join(given)} shape a new job; a resumed job keeps its own settings "
                    "(leave them out, or start a new job without --resume)."
                )
            job = GenerationJob.objects.filter(pk=opts["resume"]).first()
            if job is None:
                raise CommandError(f"--resume: No generation job {opts['resume']}.")
            count = services.job_requeue(job=job)
            self.stdout.write(f"Re-enqueued {count} pending batches of job {job.pk}.")
        else:
            job = self._create(opts)
        if opts["inline"]:
            bar = self._bar(job)
            job = services.job_run_inline(job=job, on_progress=lambda j: self._update(bar, j))
            bar.close()
        elif not opts["no_follow"]:
            job = self._follow(job, opts["poll"])
        self._report(job)

    def _create(self, opts) -> GenerationJob:
        if not opts["project"] or not opts["endpoint"]:
            raise CommandError("--project and at least one --endpoint are required.")
        project = annotate_selectors.project_get(slug=opts["project"])
        if project is None:
            raise CommandError(f"--project: No project {opts['project']!r}.")
        endpoints = []
        for name in opts["endpoint"]:
            endpoint = selectors.endpoint_get(project=project, name=name)
            if endpoint is None:
                raise CommandError(f"--endpoint: No endpoint {name!r} usable in {project.slug}.")
            endpoints.append(endpoint)
        sampling = {
            key: opts[key]
            for key in ("temperature", "top_p", "top_k", "max_new_tokens", "seed")
            if opts.get(key) is not None
        }
        if opts["stop"]:
            sampling["stop"] = opts["stop"]
        job = services.job_create(
            project=project,
            endpoints=endpoints,
            prompt_filter=_parse_filter("all" if opts["filter"] is None else opts["filter"]),
            k=DEFAULT_K if opts["k"] is None else opts["k"],
            sampling=sampling,
            task_mode=opts["task_mode"],
            pairs_per_prompt=opts["pairs_per_prompt"],
            batch_size=opts["batch_size"],
            enqueue=not opts["inline"],
            auto_release="" if opts["release"] in (None, "staged") else opts["release"],
        )
        self.stdout.write(
            f"Job {job.pk}: {job.total_units} prompt x endpoint units, k={job.k}, seed={job.sampling['seed']}"
            + (" (running inline)" if opts["inline"] else " (enqueued on the 'generation' queue)")
        )
        return job

    def _bar(self, job: GenerationJob) -> tqdm:
        return tqdm(total=job.total_units, unit="unit", desc=f"job {job.pk}", file=sys.stderr)

    def _update(self, bar: tqdm, job: GenerationJob) -> None:
        bar.n = job.done_units + job.failed_units
        bar.set_postfix(state=job.state, failed=job.failed_units, refresh=False)
        bar.refresh()

    def _follow(self, job: GenerationJob, poll: float) -> GenerationJob:
        bar = self._bar(job)
        try:
            while True:
                job.refresh_from_db()
                self._update(bar, job)
                if job.state not in (JobState.QUEUED, JobState.RUNNING):
                    break
                time.sleep(poll)
        except KeyboardInterrupt:
            self.stdout.write("\nStopped following; the job goes on in the workers.")
        finally:
            bar.close()
        return job

    def _report(self, job: GenerationJob) -> None:
        job.refresh_from_db()
        status = selectors.job_status(job=job)
        self.stdout.write(
            json.dumps(
                {
                    **{
                        k: status[k]
                        for k in ("id", "state", "done_units", "failed_units", "candidates", "tasks")
                    },
                    "release": status["release"]["state"],
                }
            )
        )
        for failure in selectors.job_failures(job=job, limit=10):
            self.stdout.write(
                f"  failed: prompt {failure.prompt_id} on {failure.endpoint}: {failure.message}"
            )
        if job.state == JobState.FAILED:
            raise CommandError(f"Job {job.pk} failed: {job.error}")


def _parse_filter(value: str) -> dict:
    if value in ("all", "untagged"):
        return {"mode": value}
    if value.startswith("tag:"):
        return {"mode": "tag", "tag": value[4:]}
    if value.startswith("ids:"):  # imported ids or prompt numbers: the service resolves them
        return {"mode": "ids", "ids": [x.strip() for x in value[4:].split(",") if x.strip()]}
    raise CommandError("--filter is all, untagged, tag:NAME or ids:ID,ID (imported ids or prompt numbers).")
