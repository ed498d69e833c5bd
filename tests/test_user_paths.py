"""Paths a user may name (MEDIUM finding): a researcher of one project cannot train on, start from,
or serve another project's exports, runs or models by naming their files, and a refusal reads the
same whether or not the file exists (no oracle on the worker's disk)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from annotate.models import Membership, Role
from tests.hub_cache import write_model_folder
from training.models import TrainingRun

pytestmark = pytest.mark.django_db


def _write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def two_projects(make_project, make_user):
    mine, theirs = make_project(name="Mine"), make_project(name="Theirs")
    researcher = make_user()
    Membership.objects.create(project=mine, user=researcher, role=Role.RESEARCHER)
    data = Path(settings.PREFHUB_DATA_DIR)
    row = json.dumps({"prompt": "Q?", "chosen": "yes", "rejected": "no"}) + "\n"
    their_labels = _write(data / "exports" / theirs.slug / "v1" / "train.jsonl", row)
    their_model = write_model_folder(data / "runs" / theirs.slug / "run-1")
    my_labels = _write(data / "exports" / mine.slug / "v1" / "train.jsonl", row)
    my_model = write_model_folder(data / "runs" / mine.slug / "run-7")  # a loadable model folder
    client = APIClient()
    client.force_login(researcher)
    return {
        "mine": mine,
        "theirs": theirs,
        "client": client,
        "their_labels": str(their_labels),
        "their_missing": str(their_labels.parent.parent / "v9" / "train.jsonl"),
        "their_model": str(their_model),
        "their_missing_model": str(their_model.parent / "run-99"),
        "my_labels": str(my_labels),
        "my_model": str(my_model),
    }


def _run(w, **body):
    return w["client"].post(f"/api/v1/projects/{w['mine'].slug}/runs/", body, format="json")


def test_another_projects_export_cannot_be_a_dataset_and_missing_reads_the_same(two_projects):
    w = two_projects
    existing = _run(w, kind="reward", base_model="tiny", dataset_path=w["their_labels"])
    missing = _run(w, kind="reward", base_model="tiny", dataset_path=w["their_missing"])
    assert existing.status_code == missing.status_code == 400
    assert existing.json()["field"] == "dataset_path"
    assert existing.json() == missing.json(), "existing and missing files must answer alike"
    assert not TrainingRun.objects.exists()


def test_another_projects_model_cannot_be_a_base_or_reward_model(two_projects):
    from annotate.errors import InvalidInput
    from training.services.runs import run_create

    w = two_projects
    existing = _run(w, kind="reward", dataset_path=w["my_labels"], base_model=w["their_model"])
    missing = _run(w, kind="reward", dataset_path=w["my_labels"], base_model=w["their_missing_model"])
    assert existing.status_code == missing.status_code == 400, existing.content
    assert existing.json()["field"] == "base_model"
    assert existing.json() == missing.json()
    # reward_model is not in the API; the service applies the same rule to it
    messages = []
    for model in (w["their_model"], w["their_missing_model"]):
        with pytest.raises(InvalidInput) as exc:
            run_create(
                project=w["mine"],
                kind="ppo",
                base_model="tiny",
                dataset_path=w["my_labels"],
                reward_model=model,
            )
        assert exc.value.field == "reward_model"
        messages.append(exc.value.message)
    assert messages[0] == messages[1]
    assert not TrainingRun.objects.exists()


def test_accelerate_config_outside_the_allowed_folders_is_no_oracle(two_projects, tmp_path):
    w = two_projects
    present = _write(tmp_path / "ds.yaml", "compute_environment: LOCAL_MACHINE\n")
    answers = [
        _run(
            w,
            kind="reward",
            base_model="tiny",
            dataset_path=w["my_labels"],
            config={"launch": {"accelerate_config": p}},
        )
        for p in (str(present), str(tmp_path / "absent.yaml"), "/etc/passwd")
    ]
    assert {a.status_code for a in answers} == {400}
    assert answers[0].json() == answers[1].json() == answers[2].json()
    assert answers[0].json()["field"] == "config"


def test_another_projects_model_folder_cannot_be_an_endpoint(two_projects):
    w = two_projects
    url = f"/api/v1/projects/{w['mine'].slug}/generation/endpoints/"
    existing = w["client"].post(
        url, {"name": "a", "backend": "transformers", "model": w["their_model"]}, format="json"
    )
    missing = w["client"].post(
        url, {"name": "b", "backend": "vllm", "model": w["their_missing_model"]}, format="json"
    )
    assert existing.status_code == missing.status_code == 400
    assert existing.json()["field"] == "model"
    assert existing.json()["detail"] == missing.json()["detail"]


def test_own_exports_runs_hub_names_and_the_allow_list_are_accepted(two_projects, tmp_path):
    w = two_projects
    resp = _run(w, kind="reward", base_model=w["my_model"], dataset_path=w["my_labels"])
    assert resp.status_code == 201, resp.content
    resp = _run(w, kind="dpo", base_model="Qwen/Qwen2.5-0.5B-Instruct", dataset_path=w["my_labels"])
    assert resp.status_code == 201, resp.content
    url = f"/api/v1/projects/{w['mine'].slug}/generation/endpoints/"
    resp = w["client"].post(
        url, {"name": "own", "backend": "transformers", "model": w["my_model"]}, format="json"
    )
    assert resp.status_code == 201, resp.content
    settings.PREFHUB_ALLOWED_MODEL_DIRS = [str(tmp_path)]
    try:
        (tmp_path / "shared-model").mkdir()
        resp = w["client"].post(
            url,
            {"name": "shared", "backend": "transformers", "model": str(tmp_path / "shared-model")},
            format="json",
        )
        assert resp.status_code == 201, resp.content
        # inside an allowed folder, a missing model is said to be missing
        resp = w["client"].post(
            url, {"name": "gone", "backend": "transformers", "model": str(tmp_path / "nope")}, format="json"
        )
        assert resp.status_code == 400 and "No model folder" in resp.json()["detail"]
    finally:
        del settings.PREFHUB_ALLOWED_MODEL_DIRS


def test_symlinks_out_of_the_project_are_followed_before_the_check(two_projects):
    w = two_projects
    link = Path(settings.PREFHUB_DATA_DIR) / "exports" / w["mine"].slug / "v2"
    link.symlink_to(Path(w["their_labels"]).parent, target_is_directory=True)
    resp = _run(w, kind="reward", base_model="tiny", dataset_path=str(link / "train.jsonl"))
    assert resp.status_code == 400 and resp.json()["field"] == "dataset_path"
