"""A run starts from a base model or from a base run's model, never silently from one when both are
given: the launch form (a typed model and a picked base run) and the API trained on the base run's
output and dropped the named model without a word; both are now a 400 naming the conflict, and
nothing is created."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from tests.training.conftest import done_export
from training.models import RunState, TrainingRun

pytestmark = pytest.mark.django_db


def _done_dpo(project) -> TrainingRun:
    out = Path(settings.PREFHUB_DATA_DIR) / "models" / "dpo-base"
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text("{}")
    return TrainingRun.objects.create(
        project=project, kind="dpo", base_model="tiny", dataset_path="x.jsonl", state=RunState.DONE,
        output_path=str(out),
    )  # fmt: skip


def test_the_api_refuses_a_base_model_and_a_base_run(client, project, researcher, dataset):
    base_run = _done_dpo(project)
    client.force_login(researcher)
    url = f"/api/v1/projects/{project.slug}/runs/"
    both = client.post(
        url,
        {"kind": "dpo", "base_model": "tiny", "base_run": base_run.pk, "dataset_path": dataset},
        content_type="application/json",
    )
    assert both.status_code == 400, both.content
    assert both.json()["field"] == "base_model" and "base run" in both.json()["detail"]
    assert TrainingRun.objects.filter(project=project).count() == 1
    # either one alone still launches
    alone = client.post(
        url,
        {"kind": "dpo", "base_run": base_run.pk, "dataset_path": dataset},
        content_type="application/json",
    )
    assert alone.status_code == 201 and alone.json()["base_model"] == base_run.output_path


def test_the_form_refuses_a_typed_model_and_a_picked_base_run(client, project, researcher, dataset):
    base_run = _done_dpo(project)
    export = done_export(project, dataset)
    client.force_login(researcher)
    url = reverse("training:run_list", args=[project.slug])
    both = client.post(
        url, {"kind": "dpo", "base_model": "tiny", "base_run": base_run.pk, "export": export.pk}
    )
    assert both.status_code == 400 and b"base run" in both.content
    assert TrainingRun.objects.filter(project=project).count() == 1
