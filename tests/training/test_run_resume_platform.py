"""Resuming a training run on the platform: a failed or cancelled run that left a checkpoint is
continued by a new run (service, API, page), which the executor runs from that checkpoint in a real
subprocess; what cannot be resumed is refused with a reason."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from annotate.errors import Conflict, InvalidInput
from core.audit import AuditEvent
from tests.training.conftest import make_run, preference_file
from training import selectors
from training.models import MetricPoint, RunState, TrainingRun
from training.runners import reward
from training.runners.configs import config_for
from training.runners.models import checkpoints_dir
from training.services.runs import run_create, run_execute, run_resume, runner_config, runs_fail_stale

pytestmark = [pytest.mark.django_db]


def _checkpoint(folder: Path, step: int) -> None:
    """A whole checkpoint-N folder, as the trainer leaves it (its trainer_state.json is written last)."""
    (folder / f"checkpoint-{step}").mkdir(parents=True)
    (folder / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps({"global_step": step}))


def _ended(project, state=RunState.FAILED, kind="reward", step: int | None = 2) -> TrainingRun:
    """A run that ended in ``state`` with a whole checkpoint at ``step``, whose data is still there
    (resuming a run whose inputs are gone is refused)."""
    folder = Path(settings.PREFHUB_DATA_DIR) / "datasets"
    folder.mkdir(parents=True, exist_ok=True)
    data = preference_file(folder / f"resume-{project.slug}.jsonl", 4, seed=0)
    run = make_run(project, kind=kind, state=state, config={"save_steps": 2}, dataset_path=data)
    run.output_path = str(Path(project_runs(project)) / f"run-{run.pk}")
    run.save(update_fields=["output_path"])
    if step is not None:
        _checkpoint(checkpoints_dir(run.output_path), step)
    return run


def project_runs(project) -> str:
    from training.services.runs import runs_root

    return str(runs_root(project))


def test_a_failed_run_with_a_checkpoint_is_resumed_by_a_new_run_with_the_same_set_up(project, researcher):
    old = _ended(project)
    assert selectors.run_resume_point(run=old) == 2
    new = run_resume(run=old, actor=researcher)
    assert new.pk != old.pk and new.resumed_from_id == old.pk and new.state == RunState.QUEUED
    assert (new.kind, new.base_model, new.dataset_path, new.config) == (
        old.kind,
        old.base_model,
        old.dataset_path,
        old.config,
    )
    assert new.output_path.endswith(f"run-{new.pk}")
    cfg, _ = runner_config(new)
    assert cfg["resume_from"] == str(checkpoints_dir(old.output_path))
    assert AuditEvent.objects.filter(action="training.run_resume", actor=researcher).count() == 1
    old.refresh_from_db()
    assert old.state == RunState.FAILED  # a job ends once: the new run carries on
    with pytest.raises(Conflict, match=f"Run #{new.pk} is already resuming this run"):
        run_resume(run=old, actor=researcher)


def test_what_cannot_be_resumed_is_refused_with_the_reason(project, researcher, dataset, tiny):
    with pytest.raises(Conflict, match="left no checkpoint"):
        run_resume(run=_ended(project, step=None), actor=researcher)
    with pytest.raises(Conflict, match="this one is done"):
        run_resume(run=_ended(project, state=RunState.DONE), actor=researcher)
    with pytest.raises(Conflict, match="this one is running"):
        run_resume(run=_ended(project, state=RunState.RUNNING), actor=researcher)
    assert selectors.run_resume_point(run=_ended(project, kind="ppo")) == 2  # PPO checkpoints too
    assert selectors.run_resume_point(run=_ended(project, state=RunState.CANCELLED)) == 2
    # A checkpoint folder cut short (no trainer_state.json) is not a checkpoint.
    half = _ended(project, step=None)
    (checkpoints_dir(half.output_path) / "checkpoint-6").mkdir(parents=True)
    assert selectors.run_resume_point(run=half) is None
    # resume_from is the platform's to set: a user naming a path there is refused.
    with pytest.raises(InvalidInput, match=r"set by the platform.*resume_from"):
        run_create(
            project=project,
            kind="reward",
            base_model=tiny,
            dataset_path=dataset,
            config={"resume_from": "/var/data/runs/other/run-1.checkpoints"},
            restrict_dataset_path=False,
        )
    assert TrainingRun.objects.filter(resumed_from__isnull=False).count() == 0


def test_the_api_and_the_run_page_resume_a_run(client, project, researcher, make_user):
    old = _ended(project, state=RunState.CANCELLED)
    url = f"/api/v1/projects/{project.slug}/runs/{old.pk}/"
    client.force_login(researcher)
    status = client.get(url).json()
    assert status["resumable_from_step"] == 2 and status["resumed_from"] is None
    page = client.get(reverse("training:run_detail", args=[project.slug, old.pk]))
    assert b"Resume from step 2" in page.content

    answer = client.post(url + "resume/")
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert body["resumed_from"] == old.pk and body["state"] == "queued"
    again = client.post(url + "resume/")
    assert again.status_code == 409 and "already resuming" in again.json()["detail"]
    new_page = client.get(reverse("training:run_detail", args=[project.slug, body["id"]]))
    assert f"run #{old.pk}</a>".encode() in new_page.content and b"Resumed from" in new_page.content

    done = _ended(project, state=RunState.DONE)
    refused = client.post(f"/api/v1/projects/{project.slug}/runs/{done.pk}/resume/")
    assert refused.status_code == 409 and "failed or cancelled" in refused.json()["detail"]

    second = _ended(project)
    resumed = client.post(reverse("training:run_resume", args=[project.slug, second.pk]), follow=True)
    new = TrainingRun.objects.get(resumed_from=second)
    assert resumed.redirect_chain[-1][0] == reverse("training:run_detail", args=[project.slug, new.pk])
    assert f"continues run #{second.pk} from its checkpoint at step 2".encode() in resumed.content
    refused_page = client.post(reverse("training:run_resume", args=[project.slug, second.pk]), follow=True)
    assert b"already resuming" in refused_page.content

    client.force_login(make_user())  # not a member: the run does not exist for them
    assert client.post(url + "resume/").status_code == 404
    assert client.post(reverse("training:run_resume", args=[project.slug, old.pk])).status_code == 404


@pytest.mark.slow
def test_a_run_whose_worker_died_resumes_from_its_checkpoint_and_finishes(
    project, researcher, tiny, tmp_path, monkeypatch
):
    """The worker dies after the checkpoint at step 2 (its process is gone, the stale sweep fails the
    run); the resumed run's subprocess trains steps 3 and 4 only and finishes; the old checkpoints
    go once they have served."""
    data = preference_file(tmp_path / "train.jsonl", 16, seed=0)
    old = run_create(
        project=project,
        kind="reward",
        base_model=tiny,
        dataset_path=data,
        config={
            "use_cpu": True,
            "max_length": 64,
            "per_device_train_batch_size": 2,
            "logging_steps": 1,
            "learning_rate": 2e-3,
            "max_steps": 4,
            "eval_fraction": 0,
            "save_steps": 2,
            "save_total_limit": 2,
        },
        actor=researcher,
        enqueue=False,
        restrict_dataset_path=False,
    )
    # The old run's trainer, as its worker ran it: both checkpoints written, then the process died
    # before the one at step 4 was complete (so only step 2 is whole) and before saving the model.
    cfg, _ = runner_config(old)

    def died(*args, **kwargs):
        raise SystemExit(137)

    with monkeypatch.context() as patch:
        patch.setattr(reward, "save_trained", died)
        with pytest.raises(SystemExit):
            reward.run(config_for("reward", cfg))
    saved = checkpoints_dir(old.output_path)
    (saved / "checkpoint-4" / "trainer_state.json").unlink()
    long_ago = timezone.now() - timedelta(hours=1)
    TrainingRun.objects.filter(pk=old.pk).update(
        state=RunState.RUNNING, started_at=long_ago, heartbeat_at=long_ago
    )
    assert runs_fail_stale() == 1
    old.refresh_from_db()
    assert old.state == RunState.FAILED and "Resume it from its checkpoint at step 2." in old.error

    new = run_resume(run=old, actor=researcher)
    new = run_execute(run_id=new.pk)
    assert new.state == RunState.DONE, new.error
    assert new.metrics["final"]["resumed_from_step"] == 2
    trained = sorted(
        MetricPoint.objects.filter(run=new, values__has_key="loss").values_list("step", flat=True)
    )
    assert trained == [3, 4]
    assert "resuming from" in Path(new.log_path).read_text()
    assert (Path(new.output_path) / "config.json").is_file()
    assert not saved.exists()  # served: deleted
    assert not checkpoints_dir(new.output_path).exists()
    shutil.rmtree(new.output_path, ignore_errors=True)
