"""A hand-written dataset with a p_chosen that is no probability (NaN, Infinity, a string, above 1,
below 0), given to the platform by dataset_path (the API) and to the train CLI: refused with an error
naming the file and the line, never trained on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from training.models import RunState
from training.services.runs import run_execute

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

GOOD = '{"prompt": "Q%d?", "chosen": "Yes. Good.", "rejected": "No. Bad.", "p_chosen": 0.8}'
BAD = ["NaN", "-Infinity", '"0.7"', "1.5", "true"]


def _file(bad: str, name: str) -> Path:
    folder = Path(settings.PREFHUB_DATA_DIR) / "datasets"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    lines = [GOOD % i for i in range(3)]
    lines.insert(2, '{"prompt": "Q?", "chosen": "Yes.", "rejected": "No.", "p_chosen": ' + bad + "}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("bad", BAD)
def test_api_dataset_path_with_bad_p_chosen_fails_naming_file_and_line(
    client, project, researcher, bad, settings
):
    from tests.conftest import bearer

    path = _file(bad, "hand.jsonl")
    resp = bearer(researcher).post(
        f"/api/v1/projects/{project.slug}/runs/",
        {"kind": "reward", "base_model": "tiny", "dataset_path": str(path), "config": {"use_cpu": True}},
        format="json",
    )
    assert resp.status_code in (201, 400), resp.content
    if resp.status_code == 400:
        assert "hand.jsonl line 3" in json.dumps(resp.json())
        return
    run = run_execute(run_id=resp.json()["id"])
    assert run.state == RunState.FAILED
    assert "hand.jsonl line 3" in run.error and "p_chosen" in run.error, run.error


@pytest.mark.parametrize("bad", BAD)
def test_train_cli_with_bad_p_chosen_names_file_and_line(tmp_path, bad):
    path = _file(bad, "cli.jsonl")
    with pytest.raises(CommandError) as err:
        call_command(
            "train", "reward", "--base-model", "tiny", "--dataset", str(path), "--out", str(tmp_path / "o")
        )
    assert "cli.jsonl line 3" in str(err.value) and "p_chosen" in str(err.value), str(err.value)
