"""``train --export`` names the export the way the README's user sees it.

``export_preferences`` (and the export page, the API) speak of an export as a version of a
project ("Export v1"), while ``train --export`` took the database id: in a second project, v1 is
not id 1, so ``train --export 1`` trained on another project's data without a word. The export
command now prints how to name it, ``train`` also takes ``SLUG/vN`` and says (on stderr) which
export it trains on."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from training.models import Export, ExportState


def _done_export(project, version: int, tmp_path, prompt: str) -> Export:
    folder = tmp_path / project.slug / f"v{version}"
    folder.mkdir(parents=True)
    (folder / "train.jsonl").write_text(json.dumps({"prompt": prompt, "chosen": "a", "rejected": "b"}) + "\n")
    return Export.objects.create(
        project=project,
        version=version,
        format="trl",
        file_type="jsonl",
        state=ExportState.DONE,
        path=str(folder),
        manifest={"files": {"train": {"path": "train.jsonl", "rows": 1}}},
    )


@pytest.fixture
def two_projects(make_project, tmp_path):
    first, second = make_project(), make_project()
    a = _done_export(first, 1, tmp_path, "first project's prompt")
    b = _done_export(second, 1, tmp_path, "second project's prompt")
    return first, second, a, b


@pytest.fixture
def trained(monkeypatch):
    seen: dict = {}

    def fake_run(*, kind, config):
        seen.update(config)

    monkeypatch.setattr("training.management.commands.train.run_python", fake_run)
    return seen


def _train(out, export: str) -> str:
    """What the command says on stderr (stdout is kept for the runner's JSON metric lines)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command(
        "train", "reward", "--export", export, "--base-model", "org/model", "--out", str(out),
        stdout=stdout, stderr=stderr,
    )  # fmt: skip
    assert stdout.getvalue() == ""
    return stderr.getvalue()


def test_train_takes_the_project_and_version(two_projects, trained, tmp_path):
    _first, second, _a, b = two_projects
    out = _train(tmp_path / "out", f"{second.slug}/v1")
    assert trained["dataset_path"].startswith(b.path)
    assert f"{second.slug}/v1" in out and f"id {b.pk}" in out


def test_train_by_id_says_which_export_it_trains_on(two_projects, trained, tmp_path):
    first, _second, a, _b = two_projects
    out = _train(tmp_path / "out", str(a.pk))
    assert trained["dataset_path"].startswith(a.path)
    assert f"{first.slug}/v1" in out


@pytest.mark.parametrize(
    "value", ["nope/v1", "{slug}/v9", "{slug}/1x", "v1", "-3", "{slug}/", "{slug}/v" + "9" * 20, "9" * 20]
)
def test_an_unknown_export_is_a_command_error_naming_the_option(two_projects, trained, tmp_path, value):
    first = two_projects[0]
    with pytest.raises(CommandError, match=r"^--export: "):
        _train(tmp_path / "out", value.format(slug=first.slug))
    assert trained == {}


def test_export_preferences_prints_the_id_train_takes(make_project, tmp_path):
    make_project()  # so the second project's v1 is not id 1
    project = make_project()
    stdout = io.StringIO()
    call_command(
        "export_preferences", "--project", project.slug, "--format", "trl", "--out", str(tmp_path / "x"),
        "-v", "0", stdout=stdout,
    )  # fmt: skip
    export = Export.objects.get(project=project)
    text = stdout.getvalue()
    assert f"--export {export.pk}" in text or f"--export {project.slug}/v{export.version}" in text
