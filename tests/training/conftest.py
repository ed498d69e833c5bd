"""Fixtures and helpers shared by the training tests: one torch thread, the tiny offline model, a
researcher of the module's project, training run rows, JSONL files and quick runner configs."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from training.models import Export, ExportState, TrainingRun

#: The export page's form as a researcher leaves it (the defaults), for tests that post it.
EXPORT_FORM = {"format": "trl", "file_type": "jsonl", "pairing": "all_pairs", "ties": "drop", "aggregate": "none",
               "min_votes": 1, "min_agreement": 0, "test_size": 0.1, "seed": 0, "margin": "on"}  # fmt: skip


@pytest.fixture
def export_page_options(monkeypatch):
    """The options the export page hands to ``export_create`` (a dict filled by each post; no
    export is compiled): the page's reading of its form, on its own."""
    seen: dict = {}

    def fake_create(*, project, format, file_type, options, **_):
        seen.clear()
        seen.update(options)
        return Export.objects.create(
            project=project, version=1, format=format, file_type=file_type, options={}
        )

    monkeypatch.setattr("training.views.exports.export_create", fake_create)
    return seen


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from a second thread, and spinning OpenMP threads on shared cores
    cost ~10x (see training.services.runs)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny Llama built offline, once per test module."""
    from generation.tiny_model import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny")))


@pytest.fixture
def no_training(monkeypatch):
    """Fails the test if the ``train`` command gets as far as training or launching."""

    def refuse(*args, **kwargs):
        raise AssertionError("the command trained or launched despite bad input")

    monkeypatch.setattr("training.management.commands.train.run_python", refuse)
    monkeypatch.setattr("training.management.commands.train.subprocess.call", refuse)


@pytest.fixture
def project(make_project):
    """A plain pairwise project (a module that needs another defines its own ``project``)."""
    return make_project()


@pytest.fixture
def dataset(request):
    """A one-pair preference file where users may name a dataset (``PREFHUB_DATA_DIR/datasets/``),
    named after the test; its path (a module that needs another file defines its own)."""
    folder = Path(settings.PREFHUB_DATA_DIR) / "datasets"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{request.node.name[:80]}.jsonl"
    path.write_text(json.dumps({"prompt": "Q?", "chosen": "yes", "rejected": "no"}) + "\n")
    return str(path)


@pytest.fixture
def researcher(project, labeler_in):
    """A researcher in the test module's ``project`` fixture."""
    return labeler_in(project, role="researcher")


def make_run(project, **values) -> TrainingRun:
    """A training run row: a reward run of "tiny" on a placeholder dataset unless ``values`` say
    otherwise."""
    return TrainingRun.objects.create(
        project=project, **{"kind": "reward", "base_model": "tiny", "dataset_path": "/x.jsonl", **values}
    )


def done_export(project, dataset: str, *, version: int = 1) -> Export:
    """A finished TRL export of ``project`` whose train file is a copy of ``dataset`` (what the run
    form lists and a run trains on), without compiling one."""
    folder = Path(dataset).parent / f"export-v{version}"
    folder.mkdir(exist_ok=True)
    (folder / "train.jsonl").write_text(Path(dataset).read_text())
    return Export.objects.create(
        project=project, version=version, format="trl", state=ExportState.DONE, path=str(folder), row_count=1
    )


def launch_fake_runner(monkeypatch, folder: Path, mode: str = "ok") -> list[Path]:
    """Make the executor launch ``test_runs_services.FAKE_RUNNER`` (a small script speaking the
    runners' protocol) in ``mode`` instead of a runner; returns the config files it is launched
    with, in order."""
    from tests.training.test_runs_services import FAKE_RUNNER
    from training.services import runs as run_services

    script = folder / "fake_runner.py"
    script.write_text(FAKE_RUNNER)
    launched: list[Path] = []

    def launch(run, config_path, launch):
        launched.append(Path(config_path))
        return [sys.executable, str(script), str(config_path), mode]

    monkeypatch.setattr(run_services, "_launch_command", launch)
    return launched


def conv_row(prompt: Any, chosen: str, rejected: str) -> dict:
    """A conversational preference row: ``prompt`` (messages) and one-message assistant replies."""
    return {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


def family_rows(name: str, *, plain: list[dict], chat: list[dict], system: dict) -> list[dict]:
    """The rows model family ``name`` (a ``generation.zoo.ZOO`` entry) takes: ``plain`` ones where
    it has no chat template, else the ``chat`` ones, and the ``system`` row too where its template
    has a system role."""
    from generation.zoo import ZOO

    if not ZOO[name].chat:
        return plain
    return [*chat, system] if ZOO[name].system_role else chat


def write_jsonl(path: Path, rows: list[dict]) -> str:
    """Write ``rows`` as JSON lines to ``path``; return the path as a string (what configs take)."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def runner_config(kind: str, base: str, data: str, out: Path, **values: Any):
    """A runner config of ``kind`` for a quick CPU run of ``base`` on ``data`` into ``out``: batches
    of 2, sequences of 64 tokens, a log line a step, unless ``values`` say otherwise."""
    from training.runners.configs import config_for

    defaults = {"use_cpu": True, "per_device_train_batch_size": 2, "max_length": 64, "logging_steps": 1}
    return config_for(
        kind, {"base_model": base, "dataset_path": data, "output_dir": str(out), **defaults, **values}
    )


GOOD_REPLIES = [
    "Yes. Good answer.",
    "Thank you! That was helpful.",
    "The capital of France is Paris.",
    "Use sorted(items) to sort.",
]
BAD_REPLIES = [
    "No. Bad answer.",
    "I am sorry, but I cannot help with that request.",
    "Maybe.",
    "The quick brown fox jumps over the lazy dog.",
]


def preference_file(path: Path, n: int, seed: int, conversational: bool = False) -> str:
    """``n`` preference rows (a good reply chosen over a bad one, drawn with ``seed``) written to
    ``path`` as JSON lines, plain or conversational; the path as a string."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        prompt, chosen, rejected = f"Question {seed}-{i}?", rng.choice(GOOD_REPLIES), rng.choice(BAD_REPLIES)
        if conversational:
            rows.append(
                {
                    "prompt": [{"role": "user", "content": prompt}],
                    "chosen": [{"role": "assistant", "content": chosen}],
                    "rejected": [{"role": "assistant", "content": rejected}],
                }
            )
        else:
            rows.append({"prompt": prompt, "chosen": " " + chosen, "rejected": " " + rejected})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def rl_checkpoint_start(tiny: str, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """(a file of 8 preference rows, the options of a 2-step RL run of ``tiny`` scored by a 1-step
    reward model of it, checkpointing every step): the start of a test of resuming an RL run."""
    from training.runners import reward

    data = preference_file(tmp_path / "pairs.jsonl", 8, seed=0)
    rm = reward.run(runner_config("reward", tiny, data, tmp_path / "rm", max_steps=1, eval_fraction=0))
    options = {
        "reward_model": rm["output_dir"],
        "max_steps": 2,
        "eval_fraction": 0,
        "save_steps": 1,
        "save_total_limit": 2,
    }
    return data, options


def kept_checkpoint(run, cfg, tmp_path: Path, monkeypatch, step: int = 1) -> Path:
    """Run ``run(cfg)`` to the end with its checkpoints kept (a finished run deletes them) and
    return its ``checkpoint-<step>`` folder."""
    from training.runners.models import checkpoints_dir

    with monkeypatch.context() as patch:
        patch.setattr("training.runners.models.checkpoints_dir", lambda out: tmp_path / "kept-elsewhere")
        run(cfg)
    return checkpoints_dir(cfg.output_dir) / f"checkpoint-{step}"


#: A small PPO run (``runner_config`` options): 2 prompts a rollout, one pass, 4 new tokens.
PPO_SMALL = {"rollout_batch_size": 2, "mini_batch_size": 2, "ppo_epochs": 1, "max_new_tokens": 4}


def ppo_kept_checkpoint(tiny: str, tmp_path: Path, monkeypatch, *, step: int = 1, **values: Any):
    """(its data file, its options, its ``checkpoint-<step>`` folder) of a small PPO run of ``tiny``
    (``rl_checkpoint_start`` with ``PPO_SMALL``, and ``values``) whose checkpoints are kept: the start
    of a test of resuming a PPO run."""
    from training.runners import ppo

    data, common = rl_checkpoint_start(tiny, tmp_path)
    common.update(PPO_SMALL)
    cfg = runner_config("ppo", tiny, data, tmp_path / "first", **{**common, **values})
    return data, common, kept_checkpoint(ppo.run, cfg, tmp_path, monkeypatch, step=step)


@pytest.fixture(scope="module")
def tiny_reward_model(tiny: str, tmp_path_factory) -> str:
    """The folder of a 1-step reward model of ``tiny`` (8 plain pairs), once per test module: what
    RLOO/GRPO runs of ``tiny`` are scored by."""
    from training.runners import reward

    work = tmp_path_factory.mktemp("tiny-rm")
    data = preference_file(work / "pairs.jsonl", 8, seed=0)
    return reward.run(runner_config("reward", tiny, data, work / "rm", max_steps=1, eval_fraction=0))[
        "output_dir"
    ]


#: A one-step RLOO/GRPO run (``runner_config`` options): one round of 2 completions of 1 prompt.
RL_ONE_STEP = {"max_steps": 1, "num_generations": 2}
