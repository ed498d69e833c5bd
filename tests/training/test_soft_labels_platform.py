"""Soft labels end to end on the platform: labels in the database (three labelers who disagree,
some ties) -> a trl_conversational export with soft_labels and ties kept -> a reward run
(run_create + run_execute, a real subprocess) -> the run's final metrics, page and API status say
it trained on p_chosen -> evaluate_reward reads the export's test file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from annotate.models import Annotation, Candidate, Prompt
from annotate.services.tasks import TaskSpec, tasks_bulk_create
from training.models import RunState
from training.services.exports import export_create, export_run
from training.services.runs import run_create, run_execute

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def disputed(make_project, labeler_in):
    project = make_project(overlap=3)
    labelers = [labeler_in(project, f"l{i}") for i in range(3)]
    prompts = Prompt.objects.bulk_create(
        [
            Prompt(project=project, external_id=f"p{i}", messages=[{"role": "user", "content": f"Q {i}?"}])
            for i in range(16)
        ]
    )
    specs = []
    for p in prompts:
        a = Candidate.objects.create(prompt=p, text="Yes. Good answer.", model_name="good")
        b = Candidate.objects.create(prompt=p, text="No. Bad answer.", model_name="bad")
        specs.append(TaskSpec(prompt_id=p.pk, candidate_ids=[a.pk, b.pk]))
    tasks = tasks_bulk_create(project=project, specs=specs)
    votes = []
    for i, t in enumerate(tasks):
        picks = ["a", "a", "b"] if i % 4 else ["tie", "tie", "tie"]  # 4 all-tie tasks, 12 disputed
        votes += [
            Annotation(task=t, labeler=u, choice=c, strength=None if c == "tie" else 2)
            for u, c in zip(labelers, picks, strict=True)
        ]
    Annotation.objects.bulk_create(votes)
    return project


def _trained(project, kind, fmt, options, *, make_user, tmp_path, settings, steps):
    """(researcher, export, run): a researcher of ``project`` exports it (``fmt``, ``options``) and
    trains a ``kind`` run of a tiny model on it, on the platform (run_create + run_execute)."""
    from annotate.services.projects import membership_add
    from generation.tiny_model import build_tiny_model

    researcher = make_user("researcher")
    membership_add(project=project, user=researcher, role="researcher")
    base = str(build_tiny_model(tmp_path / "tiny"))
    settings.PREFHUB_ALLOWED_MODEL_DIRS = [str(tmp_path)]
    export = export_create(project=project, format=fmt, file_type="jsonl", options=options, enqueue=False)
    export = export_run(export_id=export.pk)
    run = run_create(
        project=project,
        kind=kind,
        base_model=base,
        export=export,
        config={"use_cpu": True, "max_length": 64, "max_steps": steps, "per_device_train_batch_size": 4},
        actor=researcher,
        enqueue=False,
    )
    run = run_execute(run_id=run.pk)
    assert run.state == RunState.DONE, run.error
    return researcher, export, run


def test_soft_labelled_export_trains_a_reward_model_on_the_platform(
    disputed, make_user, tmp_path, settings, client
):
    researcher, export, run = _trained(
        disputed,
        "reward",
        "trl_conversational",
        {"test_size": 0.3, "soft_labels": True, "ties": "keep", "margin": True},
        make_user=make_user,
        tmp_path=tmp_path,
        settings=settings,
        steps=2,
    )
    project = disputed
    train_file = Path(export.path) / export.manifest["files"]["train"]["path"]
    rows = [json.loads(line) for line in train_file.read_text().splitlines()]
    ps = {r["p_chosen"] for r in rows if not r.get("flag")}
    assert all(p is not None and 0 <= p <= 1 for p in ps), ps
    final = run.metrics["final"]
    assert final["used_soft_labels"] is True and final["used_margin"] is True
    assert final["dropped_tie_pairs"] >= 1
    assert "Soft labels: training on p_chosen" in Path(run.log_path).read_text()
    client.force_login(researcher)
    status = client.get(f"/api/v1/projects/{project.slug}/runs/{run.pk}/")
    page = client.get(reverse("training:run_detail", args=[project.slug, run.pk])).content.decode()
    assert "Soft labels (p_chosen)" in page
    if "test" in export.manifest["files"]:
        test_file = Path(export.path) / export.manifest["files"]["test"]["path"]
        call_command("evaluate_reward", "--model", run.output_path, "--dataset", str(test_file))
    print(status.status_code, final)


@pytest.fixture
def ties_held_out(make_project, labeler_in):
    """16 prompts; every prompt the export's test split (test_size 0.3, seed 0) takes is labelled a
    tie, the others a preference."""
    from training.compiler import split_of

    project = make_project(overlap=1)
    labeler = labeler_in(project, "l0")
    votes = []
    for i in range(16):
        p = Prompt.objects.create(
            project=project, external_id=f"p{i}", messages=[{"role": "user", "content": f"Q {i}?"}]
        )
        a = Candidate.objects.create(prompt=p, text="Yes. Good answer.", model_name="good")
        b = Candidate.objects.create(prompt=p, text="No. Bad answer.", model_name="bad")
        (task,) = tasks_bulk_create(
            project=project, specs=[TaskSpec(prompt_id=p.pk, candidate_ids=[a.pk, b.pk])]
        )
        tie = split_of(f"p{i}", seed=0, test_size=0.3) == "test"
        votes.append(Annotation(task=task, labeler=labeler, choice="tie" if tie else "a"))
    Annotation.objects.bulk_create(votes)
    return project


@pytest.mark.parametrize("kind", ["reward", "dpo"])
def test_a_test_split_of_ties_skips_evaluation_on_the_platform(
    ties_held_out, make_user, tmp_path, settings, client, kind
):
    project = ties_held_out
    researcher, export, run = _trained(
        project,
        kind,
        "trl",
        {"test_size": 0.3, "ties": "keep"},
        make_user=make_user,
        tmp_path=tmp_path,
        settings=settings,
        steps=1,
    )
    assert export.manifest["counts"]["test"] >= 1
    note = run.metrics["final"]["eval_skipped"]
    assert note.startswith("held-out split: 0 usable pairs of") and "ties)" in note
    client.force_login(researcher)
    status = client.get(reverse("training:run_status", args=[project.slug, run.pk])).json()
    assert status["metrics"]["final"]["eval_skipped"] == note
    assert "Held-out evaluation skipped" in status["summary_html"]
    page = client.get(reverse("training:run_detail", args=[project.slug, run.pk])).content.decode()
    assert "Held-out evaluation skipped" in page and "evaluation skipped" in page
