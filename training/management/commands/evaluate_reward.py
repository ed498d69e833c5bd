"""``manage.py evaluate_reward --model DIR --dataset FILE``

Scores every pair of a file of HH-RLHF rows (``chosen``/``rejected`` transcripts) or TRL preference
rows with a saved reward model, formatted exactly as reward training formats them, and prints the
pair accuracy (ties count half), its 95 % bootstrap interval and the mean reward margin (and, for rows
with ``p_chosen``, the accuracy and log loss against those soft labels); ``--json``
prints the figures as one JSON object instead. Pairs are cut to ``--max-length`` tokens, by default
the length the model was trained with here (its ``prefhub_run.json``), so a run's held-out file reads
as the run read it; 512 for a model trained elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotate.errors import ServiceError
from core.paths import is_hub_id, usable_model
from training.runners.protocol import RunnerError, describe_failure


def _reward_model_usable(model: str) -> None:
    """A local folder must be a loadable sequence classifier (``core.paths.usable_model``); a Hub
    name is left to the loader."""
    if Path(model).exists() or not is_hub_id(model):
        usable_model(model, project=None, field="model", restrict=False, reward=True)


class Command(BaseCommand):
    help = "Evaluate a reward model on preference pairs (HH-RLHF or TRL rows): accuracy, CI, margin."

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, help="A saved reward model directory.")
        parser.add_argument("--dataset", required=True, help="JSONL(.gz)/Parquet of HH-RLHF or TRL rows.")
        parser.add_argument(
            "--max-length",
            type=int,
            default=None,
            help="Tokens per (prompt, reply) (default: the length the model was trained with here, else 512).",
        )
        parser.add_argument("--batch-size", type=int, default=16)
        parser.add_argument("--limit", type=int, default=0, help="Score only the first N pairs (0: all).")
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, **opts):
        from training.services.evaluation import evaluate_reward_model

        for option, least in (("max_length", 1), ("batch_size", 1), ("limit", 0)):
            if opts[option] is not None and opts[option] < least:
                flag = "--" + option.replace("_", "-")
                raise CommandError(f"{flag}: must be at least {least} (got {opts[option]}).")
        try:
            figures = evaluate_reward_model(
                opts["model"],
                opts["dataset"],
                max_length=opts["max_length"],
                batch_size=opts["batch_size"],
                limit=opts["limit"],
                check_model=_reward_model_usable,
            )
        except ServiceError as exc:
            raise CommandError(f"--model: {exc.message}") from None
        except RunnerError as exc:
            raise CommandError(exc.message) from None
        except Exception as exc:  # a model that cannot score (wrong architecture, corrupt weights)
            raise CommandError(describe_failure(exc)[1]) from None
        if opts["json"]:
            self.stdout.write(json.dumps(figures))
            return
        self.stdout.write(
            f"pairs {figures['pairs']}  accuracy {figures['accuracy']:.3f} "
            f"(95% CI {figures['accuracy_ci_low']:.3f}-{figures['accuracy_ci_high']:.3f})  "
            f"mean margin {figures['margin']:.4f}"
        )
        if "soft_accuracy" in figures:
            self.stdout.write(
                f"against the soft labels (p_chosen): accuracy {figures['soft_accuracy']:.3f}  "
                f"log loss {figures['soft_log_loss']:.4f}"
            )
        if figures.get("dropped_tie_pairs"):
            self.stdout.write(f"({figures['dropped_tie_pairs']} tie rows skipped)")
        if figures.get("cut_identical_pairs"):
            self.stdout.write(
                f"({figures['cut_identical_pairs']} pairs read the same once cut to --max-length "
                f"{figures['max_length']}: scored as ties)"
            )
