"""``manage.py train {reward,dpo,ppo,rloo,grpo} --export ID|--dataset FILE --base-model M --out DIR``

Trains in this process (the same runner code the platform launches) and prints metric lines as JSON
while it runs, then a final JSON line of metrics. ``--config`` takes a JSON file (or a JSON object)
of runner options; ``--reward-model`` is the reward model of PPO/RLOO/GRPO. ``--launch`` starts the
run through ``accelerate launch`` instead (``--num-processes``, ``--accelerate-config``).
"""

from __future__ import annotations

import errno
import json
import subprocess
import tempfile
from pathlib import Path

from django.core.management.base import CommandError

from annotate.errors import ServiceError
from annotate.selectors import project_get
from core.cli import ServiceCommand, option_in_range, user_path
from core.paths import is_hub_id, usable_model
from training.models import Export
from training.runners.configs import CONFIGS, ConfigError, config_fields, config_for
from training.runners.launch import command
from training.runners.protocol import RunnerError, describe_failure
from training.selectors import export_get
from training.services.runs import MAX_NUM_PROCESSES, export_dataset_files, run_python

#: Runner options this command always sets from its own options (a --config value would be lost).
OPTION_OF = {
    "base_model": "--base-model",
    "dataset_path": "--dataset (or --export)",
    "output_dir": "--out",
    "metrics_file": "--metrics-file",
}


def _export(value: str | int) -> Export:
    """The export ``--export`` names: an id, or ``SLUG/vN`` (a project's version ``N``)."""
    value = str(value).strip()
    slug, sep, number = value.rpartition("/")
    if sep and number[:1] in ("v", "V"):
        number = number[1:]
    export = None
    if number.isascii() and number.isdigit() and len(number) <= 9:  # a number the database can hold
        if sep:
            project = project_get(slug=slug)
            export = project and export_get(project=project, version=int(number))
        else:
            export = Export.objects.select_related("project").filter(pk=int(number)).first()
    if export is None:
        raise CommandError(
            f"--export: no export {value!r}; name one by its id or as SLUG/vN (export_preferences prints both)."
        )
    return export


def _check_appendable(path: Path) -> None:
    """``path`` is a file, or one can be made in its folder. Raises the ``OSError`` that says why
    not (as opening it to append would); creates nothing."""
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
    if path.exists():
        return
    folder = path.absolute().parent
    nearest = folder
    while not nearest.exists():
        nearest = nearest.parent
    if not nearest.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(nearest))
    if nearest != folder:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(folder))


class Command(ServiceCommand):
    help = "Train a reward model, DPO or PPO policy (RLOO/GRPO too) on an export or a dataset file."

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=list(CONFIGS))
        data = parser.add_mutually_exclusive_group(required=True)
        data.add_argument(
            "--export",
            help="An export, as its id or SLUG/vN (as export_preferences prints it): its train file; "
            "its test file is held out.",
        )
        data.add_argument("--dataset", help="A TRL JSONL/Parquet file.")
        parser.add_argument(
            "--eval-dataset", default="", help="Held-out file (default: a slice of the data)."
        )
        parser.add_argument("--base-model", required=True, help="HF model name or local path.")
        parser.add_argument("--out", required=True, help="Output directory (written atomically).")
        parser.add_argument("--reward-model", default="", help="PPO/RLOO/GRPO: the reward model's path.")
        parser.add_argument("--config", default="", help="JSON file or JSON object of runner options.")
        parser.add_argument("--metrics-file", default="", help="Also append metric lines to this file.")
        parser.add_argument(
            "--launch", action="store_true", help="Run through accelerate launch (subprocess)."
        )
        parser.add_argument("--num-processes", type=int, default=1)
        parser.add_argument("--accelerate-config", default="")

    def handle(self, *args, **opts):
        kind = opts["kind"]
        option_in_range("--num-processes", opts["num_processes"], 1, MAX_NUM_PROCESSES)
        if not opts["launch"]:  # they only shape an accelerate launch; never ignore them silently
            if opts["accelerate_config"]:
                raise CommandError("--accelerate-config: it is used only with --launch; add --launch.")
            if opts["num_processes"] != 1:
                raise CommandError("--num-processes: it is used only with --launch; add --launch.")
        options = self._options(opts["config"])
        if opts["reward_model"] and "reward_model" not in config_fields(kind):
            takers = [k for k in CONFIGS if "reward_model" in config_fields(k)]
            raise CommandError(
                f"--reward-model: a {kind} run uses no reward model (only "
                f"{', '.join(takers[:-1])} and {takers[-1]} runs do); leave it out."
            )
        # an option's errors name the flag it came from: --reward-model unless the config gave it
        flags = {**OPTION_OF, **({} if "reward_model" in options else {"reward_model": "--reward-model"})}
        given = sorted(set(options) & set(OPTION_OF))
        if given:  # the command sets these from its options: a value in the config would be lost
            key = given[0]
            raise CommandError(f"--config: {key} is given by {OPTION_OF[key]}, not in the config.")
        if opts["export"] is not None:
            export = _export(opts["export"])
            train, test = export_dataset_files(export)
            self.stderr.write(f"Training on export {export.project.slug}/v{export.version} (id {export.pk}).")
        else:
            train, test = opts["dataset"], ""
        options.update(
            base_model=opts["base_model"],
            dataset_path=str(Path(train).resolve()),
            output_dir=str(Path(opts["out"]).resolve()),
            metrics_file=opts["metrics_file"],
        )
        if opts["eval_dataset"] or test:
            options["eval_dataset_path"] = str(Path(opts["eval_dataset"] or test).resolve())
        if opts["reward_model"]:
            reward = Path(opts["reward_model"])
            options["reward_model"] = str(reward.resolve()) if reward.exists() else opts["reward_model"]
        try:
            config_for(kind, options)
        except ConfigError as exc:  # named by the option it came from: a flag's, else --config
            message = str(exc)
            flag = next((flag for key, flag in flags.items() if message.startswith(key)), "--config")
            raise CommandError(f"{flag}: {message}") from exc
        self._check_models(options)
        if options["metrics_file"]:  # else first opened at the run's first metric line, mid-run
            with user_path("--metrics-file", options["metrics_file"]):
                _check_appendable(Path(options["metrics_file"]))
        out = Path(options["output_dir"])
        with user_path("--out", out):
            taken = out.is_file() or (out.is_dir() and any(out.iterdir()))
        if taken and not (out.is_dir() and options.get("overwrite_output_dir") is True):
            # the runner refuses it too, but only once the models are loaded and evaluated
            raise CommandError(f"--out: {out} already exists; choose another output directory.")
        if opts["launch"]:
            return self._launch(kind, options, opts)
        try:
            run_python(kind=kind, config=options)  # prints metric lines and the final line
        except (RunnerError, ServiceError) as exc:
            raise CommandError(exc.message) from exc
        except Exception as exc:
            raise CommandError(describe_failure(exc)[1]) from exc

    def _check_models(self, options: dict) -> None:
        """A local base or reward model folder must be loadable (and a reward model a sequence
        classifier): the rule runs use (``core.paths.usable_model``), checked now rather than after
        the data and the other models are loaded. A Hub name is left to the runner (it may download)."""
        for key in ("base_model", "reward_model"):
            value = options.get(key) or ""
            if value and (Path(value).exists() or not is_hub_id(value)):
                usable_model(value, project=None, field=key, restrict=False, reward=key == "reward_model")

    def _options(self, raw: str) -> dict:
        if not raw:
            return {}
        if raw.lstrip().startswith("{"):
            text = raw
        else:
            with user_path("--config", raw):
                text = Path(raw).read_text(encoding="utf-8")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CommandError(f"--config is not valid JSON: {exc.msg}") from exc
        if not isinstance(value, dict):
            raise CommandError("--config must be a JSON object.")
        return value

    def _launch(self, kind: str, options: dict, opts: dict) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump(options, fh)
        try:
            try:
                cmd = command(
                    kind,
                    fh.name,
                    num_processes=opts["num_processes"],
                    accelerate_config=opts["accelerate_config"],
                )
            except ConfigError as exc:
                raise CommandError(f"--accelerate-config: {exc}") from None
            rc = subprocess.call(cmd)
        finally:
            Path(fh.name).unlink(missing_ok=True)
        if rc != 0:
            raise CommandError(f"The run failed (exit code {rc}); see the error line above.")
