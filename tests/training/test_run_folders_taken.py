"""A new run's folder name is already taken in the data folder.

Run folders are named after the run's database id (``run-<id>``). When the database starts again
from empty while the data folder stays (a demo's SQLite file deleted, a test database, two servers
sharing one data folder), the ids start again at 1 and the names are those of the old runs. Before:
the new run failed ("... already exists; choose another output directory"), its log went on at the
end of the old run's log, and the run page offered "Resume from step N" from the OLD run's
checkpoints for a run that never trained. Now a name whose output, log, checkpoints or prompts
file exists is not used: the run gets ``run-<id>-2`` (then ``-3``, ...), and the old files stay as
they were."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings

from annotate.models import Prompt
from tests.training.test_runs_services import _done_run
from training import selectors
from training.models import RunState, TrainingRun
from training.services.runs import run_create, runs_root
from training.services.runs import runner_config as run_files

pytestmark = pytest.mark.django_db


def _old_run_left(root: Path, name: str) -> None:
    """What a finished-then-failed run of another database left under ``name``."""
    (root / name).mkdir(parents=True)
    (root / name / "config.json").write_text("{}")
    (root / f"{name}.log").write_text("the old run's log\n")
    checkpoint = root / f"{name}.checkpoints" / "checkpoint-8"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 8}))


@pytest.fixture
def dataset():
    folder = Path(settings.PREFHUB_DATA_DIR) / "datasets"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "taken-names.jsonl"
    path.write_text(json.dumps({"prompt": "Q?", "chosen": "yes", "rejected": "no no"}) + "\n")
    return str(path)


def test_a_taken_name_is_not_reused(make_project, dataset):
    project = make_project()
    made = run_create(project=project, kind="reward", base_model="tiny", dataset_path=dataset)
    root = runs_root(project)
    next_name = f"run-{made.pk + 1}"
    _old_run_left(root, next_name)
    (root / f"{next_name}-2.prompts.jsonl").write_text("")  # taken too: the next free name is -3

    run = run_create(project=project, kind="reward", base_model="tiny", dataset_path=dataset)
    assert run.pk == made.pk + 1
    assert Path(run.output_path) == root / f"{next_name}-3"
    assert Path(run.log_path) == root / f"{next_name}-3.log"
    # the old run's files are untouched, and nothing of them is offered as this run's
    assert (root / f"{next_name}.log").read_text() == "the old run's log\n"
    TrainingRun.objects.filter(pk=run.pk).update(state=RunState.FAILED)
    run.refresh_from_db()
    assert selectors.run_resume_point(run=run) is None


def test_an_rl_run_without_data_writes_its_prompts_beside_its_own_name(make_project):
    project = make_project()
    Prompt.objects.create(project=project, messages=[{"role": "user", "content": "Hi?"}])
    reward = _done_run(project, "reward")
    probe = run_create(project=project, kind="ppo", base_model="tiny", reward_run=reward)
    root = runs_root(project)
    taken = f"run-{probe.pk + 1}"
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{taken}.prompts.jsonl").write_text("an old run's prompts\n")
    run = run_create(project=project, kind="ppo", base_model="tiny", reward_run=reward)
    cfg, _ = run_files(run)
    assert Path(cfg["dataset_path"]) == root / f"{taken}-2.prompts.jsonl"
    assert (root / f"{taken}.prompts.jsonl").read_text() == "an old run's prompts\n"
    assert json.loads(Path(cfg["dataset_path"]).read_text()) == {
        "prompt": [{"role": "user", "content": "Hi?"}]
    }
