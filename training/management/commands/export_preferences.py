"""Export a project's preferences inline (no worker), with a progress bar.

    python manage.py export_preferences --project my-project --format trl --out ./dpo-data \\
        --pairing best_vs_rest --aggregate majority --min-votes 2 --test-size 0.1 --seed 1

The export is recorded (a new version of the project's exports, stored under PREFHUB_DATA_DIR)
and its files are copied to ``--out``.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from django.core.management.base import CommandError

from annotate.models import Annotation
from annotate.selectors import project_get, project_people_ids
from core.cli import ServiceCommand, user_path
from training.compiler import AGGREGATIONS, PAIRINGS, TIE_MODES, ExportOptions
from training.formats import FILE_TYPES
from training.models import ExportFormat
from training.services.exports import CARD, MANIFEST, export_create, export_files, export_run

#: Every name an export's files can have: what --force replaces in --out, so that no file of an
#: earlier export (its test split, its other file type) stays beside this export's.
EXPORT_FILE_NAMES = {f"{split}.{ext}" for split in ("train", "test") for ext in FILE_TYPES} | {MANIFEST, CARD}


class Command(ServiceCommand):
    help = "Compile a project's annotations into a preference dataset (TRL, HH-RLHF, OpenAI, raw)."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="Project slug.")
        parser.add_argument("--format", required=True, choices=ExportFormat.values)
        parser.add_argument("--out", required=True, help="Folder to copy the export's files into.")
        parser.add_argument("--file-type", default="jsonl", choices=FILE_TYPES)
        parser.add_argument("--pairing", choices=PAIRINGS, help="Ranking to pairs (default all_pairs).")
        parser.add_argument(
            "--ties", choices=TIE_MODES, help="Drop ties/both-bad or keep them as flagged rows."
        )
        parser.add_argument(
            "--aggregate",
            choices=AGGREGATIONS,
            help="none: a row per judgment; majority: per comparison; weighted: majority with votes "
            "weighted by the reliability model.",
        )
        parser.add_argument("--min-votes", type=int)
        parser.add_argument("--min-agreement", type=float)
        parser.add_argument("--dimension", help="Export the preference derived from this rating dimension.")
        parser.add_argument("--include-gold", action="store_true", default=None)
        parser.add_argument("--include-flagged", action="store_true", default=None)
        parser.add_argument("--labelers", help="Only these labelers (usernames or ids, comma-separated).")
        parser.add_argument("--exclude-labelers", help="Leave out these labelers (usernames or ids).")
        parser.add_argument(
            "--min-reliability", type=float, help="Drop labelers whose reliability is below this."
        )
        parser.add_argument(
            "--test-size",
            type=float,
            help=f"Share of prompts in the test split (0..0.99; default {ExportOptions().test_size}, 0: none).",
        )
        parser.add_argument("--seed", type=int)
        parser.add_argument("--no-margin", action="store_true", help="Leave out the margin column.")
        parser.add_argument(
            "--soft-labels",
            action="store_true",
            help="Add p_chosen: the reliability model's probability that chosen is preferred (trl formats).",
        )
        parser.add_argument(
            "--exclude-judge-labels",
            action="store_true",
            help="Leave out the labels AI judges gave under routing (annotation source 'judge').",
        )
        parser.add_argument(
            "--labeled-by", action="store_true", help="Add labeled_by (human, judge or mixed) to trl rows."
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Write into --out even if it is not empty (an earlier export's files there are replaced).",
        )

    def _user_ids(self, value: str | None, option: str, project) -> list[int] | None:
        if value is None:
            return None
        return project_people_ids(project=project, names=value, field=option)

    def handle(self, *args, **opts):
        from tqdm import tqdm

        project = project_get(slug=opts["project"])
        if project is None:
            raise CommandError(f"--project: no project with slug {opts['project']!r}.")
        out = Path(opts["out"])
        with user_path("--out", out):
            _check_out(out)
        if out.exists() and any(out.iterdir()) and not opts["force"]:
            raise CommandError(f"--out: {out} is not empty (use --force to write into it anyway).")
        options = {
            key: opts[key]
            for key in ("pairing", "ties", "aggregate", "min_votes", "min_agreement", "dimension", "include_gold",
                        "include_flagged", "min_reliability", "test_size", "seed")
            if opts[key] is not None
        }  # fmt: skip
        if opts["no_margin"]:
            options["margin"] = False
        if opts["soft_labels"]:
            options["soft_labels"] = True
        if opts["exclude_judge_labels"]:
            options["judge_labels"] = "exclude"
        if opts["labeled_by"]:
            options["labeled_by"] = True
        for option, key in (("labelers", "labelers_include"), ("exclude-labelers", "labelers_exclude")):
            ids = self._user_ids(opts[option.replace("-", "_")], option, project)
            if ids is not None:
                options[key] = ids
        export = export_create(
            project=project,
            format=opts["format"],
            file_type=opts["file_type"],
            options=options,
            enqueue=False,
        )
        total = Annotation.objects.filter(task__project=project).count()
        passes = 2 if options.get("min_reliability") is not None else 1
        with tqdm(
            total=total, unit="ann", desc=f"export v{export.version}", disable=opts["verbosity"] == 0
        ) as bar:
            export = export_run(export_id=export.pk, progress=bar.update if passes == 1 else None)
            bar.update(total - bar.n)
        try:
            with user_path("--out", out):
                out.mkdir(parents=True, exist_ok=True)
                names = export_files(export=export)
                for stale in sorted(EXPORT_FILE_NAMES - set(names)):  # an earlier export's (--force)
                    (out / stale).unlink(missing_ok=True)
                for name in names:
                    shutil.copyfile(Path(export.path) / name, out / name)
        except CommandError as exc:
            raise CommandError(f"{exc} Export v{export.version} is stored at {export.path}.") from None
        counts = export.manifest["counts"]
        self.stdout.write(
            f"Export v{export.version}: {counts['rows']} rows (train {counts['train']}, test {counts['test']}), "
            f"dropped {counts['dropped'] or 'none'}; sha256 {export.content_hash}\n"
            f"Files in {out} (stored at {export.path}).\n"
            f"Train on it with: train ... --export {project.slug}/v{export.version} (or --export {export.pk})"
        )


def _check_out(out: Path) -> None:
    """Before anything is exported: ``out`` is a folder, or one can be made there (its nearest
    existing ancestor is a writable folder). Raises the ``OSError`` that says why not."""
    if out.exists():
        if not out.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(out))
        return
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(parent))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "Permission denied", str(parent))
