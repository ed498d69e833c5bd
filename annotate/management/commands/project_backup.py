"""python manage.py project_backup dump SLUG FILE [--force] | restore FILE [--slug NEW] [--name NAME]"""

from __future__ import annotations

import contextlib
import errno
import os

from django.core.management.base import CommandError

from annotate.models import Project
from annotate.services.backup import project_dump, project_restore
from core.cli import ServiceCommand, user_path


class Command(ServiceCommand):
    help = (
        "Back up one project to a gzip'd JSON-lines file, or restore such a file as a new project. "
        "Restore is atomic (a bad file restores nothing) and refuses a slug that exists."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        dump = sub.add_parser("dump", help="Write a project to FILE (.jsonl.gz).")
        dump.add_argument("slug")
        dump.add_argument("file")
        dump.add_argument("--force", action="store_true", help="Replace FILE if it exists.")
        restore = sub.add_parser("restore", help="Restore FILE as a new project.")
        restore.add_argument("file")
        restore.add_argument(
            "--slug", default=None, help="Restore under this slug instead of the dumped one."
        )
        restore.add_argument(
            "--name",
            default=None,
            help="Name the restored project (a name another project has is refused). Without it the dumped name is kept, unless another project "
            'has it: then "NAME (restored copy)".',
        )

    def handle(self, *args, **opts):
        if opts["action"] == "dump":
            project = Project.objects.filter(slug=opts["slug"]).first()
            if project is None:
                raise CommandError(f"slug: no project {opts['slug']!r}.")
            target = opts["file"]
            tmp = f"{target}.tmp-{os.getpid()}"
            with user_path("file", target):
                if os.path.isdir(target):
                    raise IsADirectoryError(errno.EISDIR, "Is a directory", target)
                if os.path.lexists(target) and not opts["force"]:  # an earlier backup is not lost to a typo
                    raise CommandError(f"file: {target!r} exists; pass --force to replace it.")
                try:
                    with open(tmp, "wb") as out:
                        counts = project_dump(project=project, out=out)
                    os.replace(tmp, target)
                finally:  # a dump that failed half-way leaves no partial file behind
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
            self.stdout.write(
                self.style.SUCCESS(
                    f"Wrote {opts['file']}: " + ", ".join(f"{v} {k}" for k, v in counts.items())
                )
            )
            return
        if not os.path.isfile(opts["file"]):
            raise CommandError(f"file: {opts['file']!r} does not exist or is not a file.")
        try:
            with open(opts["file"], "rb") as stream:
                project, counts = project_restore(stream=stream, slug=opts["slug"], name=opts["name"])
        except OSError as exc:
            raise CommandError(f"file: cannot read {opts['file']!r} as a gzip'd dump ({exc}).") from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored project {project.slug!r} ({project.name}): "
                + ", ".join(f"{v} {k}" for k, v in counts.items())
            )
        )
