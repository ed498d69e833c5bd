"""Probe: a run whose options the runner would refuse is refused when it is submitted (the REST API
and the run form: 400 naming ``config``), with no run row and nothing queued. Before, the service
only type-checked the options (``config_for(..., validate=False)``): ``learning_rate: 0``,
``beta: 0`` or a PPO batch that does not divide were queued (201) and failed in the worker, and
``learning_rate: null`` was queued and crashed the runner with a TypeError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from annotate.models import OutboxMessage
from training.models import TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def reward_run(project, tmp_path):
    from tests.training.conftest import make_run

    return make_run(project, state="done", output_path=str(tmp_path / "rm"))


BAD = [
    ("reward", {"learning_rate": 0}, "learning_rate must be positive"),
    ("reward", {"learning_rate": None}, "learning_rate may not be null"),
    ("reward", {"num_train_epochs": 0}, "num_train_epochs"),
    ("reward", {"per_device_train_batch_size": 0}, "per_device_train_batch_size must be positive"),
    ("reward", {"lr_scheduler_type": "bogus"}, "lr_scheduler_type must be one of"),
    ("dpo", {"beta": 0}, "beta must be positive"),
    ("dpo", {"merge_lora": False}, "merge_lora=false is not supported"),
    ("dpo", {"use_lora": True, "lora_r": 0}, "lora_r must be positive"),
    ("ppo", {"rollout_batch_size": 10}, "rollout_batch_size must be a positive multiple"),
    ("ppo", {"temperature": 0}, "temperature must be positive"),
]


@pytest.mark.parametrize(("kind", "config", "message"), BAD)
def test_api_refuses_options_the_runner_refuses(
    client, project, researcher, dataset, reward_run, kind, config, message
):
    client.force_login(researcher)
    body = {"kind": kind, "base_model": "tiny", "dataset_path": dataset, "config": config}
    if kind == "ppo":
        body["reward_run"] = reward_run.pk
    before = TrainingRun.objects.count()
    response = client.post(
        f"/api/v1/projects/{project.slug}/runs/", json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["field"] == "config"
    assert message in response.json()["detail"]
    assert TrainingRun.objects.count() == before
    assert not OutboxMessage.objects.filter(task_name="training.tasks.runs.run_execute").exists()


def test_run_form_refuses_options_the_runner_refuses(client, project, researcher):
    from training.models import Export, ExportState

    folder = Path(settings.PREFHUB_DATA_DIR) / "exports" / project.slug / "v1"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text(json.dumps({"prompt": "Q?", "chosen": "a", "rejected": "b"}) + "\n")
    export = Export.objects.create(
        project=project, version=1, format="trl", state=ExportState.DONE, path=str(folder), row_count=1
    )
    client.force_login(researcher)
    response = client.post(
        reverse("training:run_list", args=[project.slug]),
        {"kind": "dpo", "export": export.pk, "base_model": "tiny", "config": '{"beta": -1}'},
    )
    assert response.status_code == 400
    assert b"beta must be positive" in response.content
    assert not TrainingRun.objects.filter(project=project).exists()


def test_valid_options_are_still_queued_as_given(client, project, researcher, dataset):
    client.force_login(researcher)
    response = client.post(
        f"/api/v1/projects/{project.slug}/runs/",
        {"kind": "dpo", "base_model": "tiny", "dataset_path": dataset, "config": {"beta": 0.2}},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    run = TrainingRun.objects.get(pk=response.json()["id"])
    assert run.config == {"beta": 0.2}  # no placeholder paths stored
