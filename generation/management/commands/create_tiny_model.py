"""Build the tiny offline model (trained BPE tokenizer + random-init Llama + chat template).

    python manage.py create_tiny_model var/models/tiny [--project SLUG] [--register-endpoint NAME]
                                       [--keep-existing]

--project trains the tokenizer on that project's prompts; --register-endpoint adds a
transformers endpoint for the model (scoped to --project when given). --keep-existing uses a model
already in the folder as it is and only registers the endpoint if none has that name (what
``make run`` does, so a database made anew beside an old var/models still gets its endpoint).
"""

from __future__ import annotations

import errno
import shutil
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotate import selectors as annotate_selectors
from annotate.errors import ServiceError
from annotate.models import Prompt
from core.cli import option_in_range, user_path
from generation import services
from generation.models import ModelEndpoint
from generation.tiny_model import build_tiny_model

MAX_TRAINING_PROMPTS = 20_000
#: A byte-level tokenizer has at least the 256 bytes; a far larger request made the tokenizer
#: trainer's allocation fail, which aborts the process.
VOCAB_SIZES = range(256, 65_536 + 1)
SEEDS = range(0, 2**32)


class Command(BaseCommand):
    help = "Build a tiny causal LM offline (for tests and the demo); optionally register it as an endpoint."

    def add_arguments(self, parser):
        parser.add_argument("out_dir")
        parser.add_argument("--project", help="train the tokenizer on this project's prompts (slug)")
        parser.add_argument(
            "--register-endpoint", metavar="NAME", help="register a transformers endpoint NAME"
        )
        parser.add_argument(
            "--vocab-size",
            type=int,
            default=512,
            help=f"{VOCAB_SIZES.start} to {VOCAB_SIZES.stop - 1} (default 512).",
        )
        parser.add_argument("--seed", type=int, default=0, help=f"0 to {SEEDS.stop - 1} (default 0).")
        parser.add_argument(
            "--keep-existing",
            action="store_true",
            help="a model already in out_dir is used as it is; the endpoint is registered if missing",
        )

    def handle(self, *args, out_dir: str, project: str | None, register_endpoint: str | None, **options):
        for option, allowed in (("vocab_size", VOCAB_SIZES), ("seed", SEEDS)):
            option_in_range(f"--{option.replace('_', '-')}", options[option], allowed.start, allowed.stop - 1)
        project_obj = None
        texts: list[str] = []
        if project:
            project_obj = annotate_selectors.project_get(slug=project)
            if project_obj is None:
                raise CommandError(f"--project: No project {project!r}.")
            for messages in Prompt.objects.filter(project=project_obj).values_list("messages", flat=True)[
                :MAX_TRAINING_PROMPTS
            ]:
                texts.extend(m.get("content", "") for m in messages or [] if isinstance(m, dict))
            texts = [t for t in texts if isinstance(t, str) and t]
            if texts:
                self.stdout.write(f"Training the tokenizer on {len(texts)} messages of {project_obj.slug}.")
            else:  # build_tiny_model falls back to its own corpus
                self.stdout.write(
                    f"{project_obj.slug} has no prompt text: training the tokenizer on the built-in corpus."
                )
        path = Path(out_dir).absolute()
        with user_path("out_dir", path):
            path = path.resolve()
            existed = path.exists()
            if options["keep_existing"] and (path / "config.json").is_file():
                self.keep(path, register_endpoint, project_obj)
                return
            if existed and (not path.is_dir() or any(path.iterdir())):
                raise CommandError(f"out_dir: {path} already exists; choose a new or empty folder.")
            if path.parent.exists() and not path.parent.is_dir():  # mkdir would say "File exists"
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(path))
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
        try:  # built aside and renamed into place: a failed build leaves no half model behind
            build_tiny_model(tmp, texts=texts or None, vocab_size=options["vocab_size"], seed=options["seed"])
            with user_path("out_dir", path):
                if path.exists():
                    path.rmdir()  # the empty folder checked above
                tmp.rename(path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        endpoint = self.register(register_endpoint, path, project_obj, made=path, existed=existed)
        self.stdout.write(self.style.SUCCESS(f"Tiny model written to {path}"))
        if endpoint is not None:
            self.stdout.write(self.style.SUCCESS(f"Endpoint {endpoint.name} registered."))

    def keep(self, path: Path, name: str | None, project) -> None:
        """--keep-existing with a model in ``path``: register ``name`` unless an endpoint has it
        (one serving another model is refused: it is not this model's endpoint)."""
        self.stdout.write(f"Tiny model kept at {path}")
        current = ModelEndpoint.objects.filter(name=name).first() if name else None
        if current is None:
            if self.register(name, path, project, made=None) is not None:
                self.stdout.write(self.style.SUCCESS(f"Endpoint {name} registered."))
        elif current.model != str(path):
            raise CommandError(
                f"--register-endpoint: endpoint {name!r} already serves {current.model}, not {path}."
            )

    def register(self, name: str | None, path: Path, project, *, made: Path | None, existed: bool = False):
        """Register the transformers endpoint ``name`` for the model at ``path`` (None: no name).
        When it is refused, the model this command ``made`` goes too: it did not do what was asked."""
        if not name:
            return None
        try:
            return services.endpoint_create(
                name=name,
                backend="transformers",
                model=str(path),
                config={"device": "cpu"},
                default_sampling={"max_new_tokens": 64},
                project=project,
            )
        except ServiceError as exc:
            if made is not None:
                shutil.rmtree(made, ignore_errors=True)
                if existed:
                    made.mkdir(exist_ok=True)
            raise CommandError(f"--register-endpoint: {exc.message}") from None
