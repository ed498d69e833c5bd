"""A run's launch config file is named after the run's own name, as its output, log, checkpoints and
prompts are: a run named ``run-<id>-2`` (its id's name was taken by another database's run sharing
the data folder) wrote ``run-<id>.config.json``, over the other run's config file, and two such runs
started together could each launch the other's options, data and output folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.training.conftest import launch_fake_runner
from training.services.runs import run_create, run_execute, runs_root

pytestmark = pytest.mark.django_db


def test_a_renamed_run_writes_its_own_config_file(make_project, dataset, tmp_path, monkeypatch):
    launched = launch_fake_runner(monkeypatch, tmp_path)
    project = make_project()
    made = run_create(project=project, kind="reward", base_model="tiny", dataset_path=dataset, enqueue=False)
    root = runs_root(project)
    taken = f"run-{made.pk + 1}"
    (root / taken).mkdir(parents=True)
    (root / taken / "config.json").write_text("{}")
    other_config = root / f"{taken}.config.json"
    other_config.write_text('{"output_dir": "the other run\'s"}')

    run = run_create(project=project, kind="reward", base_model="tiny", dataset_path=dataset, enqueue=False)
    assert Path(run.output_path) == root / f"{taken}-2"
    run = run_execute(run_id=run.pk, poll_seconds=0.05)
    assert run.state == "done", run.error
    assert launched == [root / f"{taken}-2.config.json"]
    assert json.loads(launched[0].read_text())["output_dir"] == run.output_path
    assert other_config.read_text() == '{"output_dir": "the other run\'s"}'  # untouched
