"""python manage.py import_prompts --project SLUG FILE [options]"""

from __future__ import annotations

import json
import os

from django.core.management.base import CommandError
from tqdm import tqdm

from annotate.selectors import project_get
from annotate.services.imports import FORMATS, ImportFailed, prompts_import
from annotate.services.tasks import PairMode
from core.cli import ServiceCommand, user_path


class Command(ServiceCommand):
    help = (
        "Import prompts and candidates (JSONL, or HH-RLHF {chosen, rejected} transcripts, plain or .gz) into a project "
        "and create comparison tasks from the candidates. ATOMIC by default: the whole file is imported or nothing is, "
        "and every bad line is reported with its number, field and reason. With --skip-invalid the good lines are "
        "imported and the bad ones reported."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "file",
            help="Path to a .jsonl or .jsonl.gz file ('-' is not supported: imports must be re-readable).",
        )
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument(
            "--format",
            default="auto",
            choices=FORMATS,
            help="Input format (default: detect from the first line).",
        )
        parser.add_argument(
            "--task-mode",
            choices=PairMode.values,
            default=None,
            help="How candidates become tasks: all_pairs (default for pairwise), sampled_pairs, ranking (default for ranking), none.",
        )
        parser.add_argument(
            "--pairs-per-prompt", type=int, default=None, help="With --task-mode sampled_pairs."
        )
        parser.add_argument(
            "--seed", type=int, default=0, help="Seed for pair sampling and slot order (default 0)."
        )
        parser.add_argument(
            "--preference-source",
            default=None,
            help="HH-RLHF only: import the recorded preference as an annotation by a login-less user named after this source.",
        )
        parser.add_argument(
            "--skip-invalid",
            action="store_true",
            help="Import the good lines, report the bad ones (not atomic).",
        )
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, **opts):
        project = project_get(slug=opts["project"])
        if project is None:
            raise CommandError(f"--project: no project with slug {opts['project']!r}.")
        path = opts["file"]
        if not os.path.isfile(path):
            raise CommandError(f"file: {path!r} does not exist or is not a file.")
        with user_path("file", path):
            raw = open(path, "rb")  # noqa: SIM115 (closed by the with below)
            size = os.fstat(raw.fileno()).st_size
        with (
            raw,
            tqdm(total=size, unit="B", unit_scale=True, desc="import", disable=opts["json"]) as bar,
        ):

            def progress(_lines: int) -> None:
                bar.n = min(raw.tell(), size)
                bar.refresh()

            try:
                report = prompts_import(
                    project=project,
                    stream=raw,
                    fmt=opts["format"],
                    task_mode=opts["task_mode"],
                    pairs_per_prompt=opts["pairs_per_prompt"],
                    seed=opts["seed"],
                    preference_source=opts["preference_source"],
                    skip_invalid=opts["skip_invalid"],
                    progress=progress,
                )
            except ImportFailed as exc:
                bar.close()
                if opts["json"]:
                    self.stdout.write(json.dumps(exc.report.as_dict()))
                for err in exc.report.errors:
                    self.stderr.write(f"{path}: {err}")
                raise CommandError(
                    f"Nothing was imported: {len(exc.report.errors)} bad line(s) in {path} (see above; --skip-invalid imports the rest)."
                ) from None
        if opts["json"]:
            self.stdout.write(json.dumps(report.as_dict()))
            return
        for err in report.errors:
            self.stderr.write(f"{path}: skipped {err}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {report.prompts} prompts, {report.candidates} candidates, {report.tasks} tasks, "
                f"{report.annotations} recorded preferences from {report.lines} lines ({report.format})"
                + (f"; skipped {report.skipped_lines} bad line(s)" if report.skipped_lines else "")
                + "."
            )
        )
