"""Resuming runs, probed as an adversarial user would: a chain of resumptions that finishes, a run
whose base model, data or reward model went away before it was resumed, and an RLOO/GRPO run on
the project's prompts whose prompts changed before it was resumed."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from annotate.errors import Conflict
from annotate.models import Prompt
from tests.training.conftest import launch_fake_runner, make_run
from training import selectors
from training.models import RunState, TrainingRun
from training.runners.models import checkpoints_dir
from training.services import runs as run_services
from training.services.runs import run_execute, run_resume, runner_config, runs_fail_stale, runs_root

pytestmark = [pytest.mark.django_db]


def _checkpoint(folder: Path, step: int) -> None:
    (folder / f"checkpoint-{step}").mkdir(parents=True)
    (folder / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps({"global_step": step}))


def _ended(run: TrainingRun, step: int, state=RunState.FAILED) -> TrainingRun:
    """``run`` ended in ``state`` with a whole checkpoint at ``step`` in its checkpoints folder."""
    run.output_path = str(runs_root(run.project) / f"run-{run.pk}")
    run.log_path = run.output_path + ".log"
    run.state = state
    run.save(update_fields=["output_path", "log_path", "state"])
    _checkpoint(checkpoints_dir(run.output_path), step)
    return run


@pytest.fixture
def fake_runner(tmp_path, monkeypatch):
    """The executor runs a small script speaking the runners' protocol ("ok": a model and a final line)."""
    launch_fake_runner(monkeypatch, tmp_path)


@pytest.fixture
def base_model(tiny, tmp_path):
    """A copy of the tiny model that a test may delete."""
    return shutil.copytree(tiny, tmp_path / "base")


@pytest.fixture
def reward_model(tiny, tmp_path):
    """A folder that reads as a reward model (a sequence classifier), which a test may delete."""
    folder = shutil.copytree(tiny, tmp_path / "rm")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(
        json.dumps({**config, "architectures": ["LlamaForSequenceClassification"]})
    )
    return folder


def test_a_finished_chain_of_resumptions_deletes_every_checkpoint_it_continued_from(
    project, researcher, dataset, fake_runner
):
    """A failed (checkpoint 2) -> B resumes A, fails too (checkpoint 4) -> C resumes B, finishes.
    The whole chain's training is in C's model: none of the runs before it is left resumable."""
    first = _ended(make_run(project, dataset_path=dataset, config={"save_steps": 2}), 2)
    second = _ended(run_resume(run=first, actor=researcher), 4)
    third = run_resume(run=second, actor=researcher)
    assert run_execute(run_id=third.pk, poll_seconds=0.05).state == RunState.DONE
    assert not checkpoints_dir(second.output_path).exists()
    assert not checkpoints_dir(first.output_path).exists()
    assert selectors.run_resume_point(run=first) is None
    with pytest.raises(Conflict, match="left no checkpoint"):
        run_resume(run=first, actor=researcher)


def test_a_run_whose_inputs_are_gone_is_not_resumed(project, researcher, dataset, base_model, tmp_path):
    """The base model or data of a run went away: resuming it is refused with the reason (409), not
    queued to fail in the worker."""
    gone_model = _ended(make_run(project, base_model=str(base_model), dataset_path=dataset), 2)
    shutil.rmtree(base_model)
    with pytest.raises(Conflict, match=r"cannot be resumed.*No model folder at"):
        run_resume(run=gone_model, actor=researcher)

    data = Path(settings.PREFHUB_DATA_DIR) / "datasets" / "soon-gone.jsonl"
    data.write_text(Path(dataset).read_text())
    gone_data = _ended(make_run(project, dataset_path=str(data)), 2)
    data.unlink()
    with pytest.raises(Conflict, match=r"cannot be resumed.*No dataset file at"):
        run_resume(run=gone_data, actor=researcher)
    assert not TrainingRun.objects.filter(resumed_from__isnull=False).exists()


def test_the_api_refuses_to_resume_a_run_whose_reward_model_is_gone(
    client, project, researcher, dataset, tiny, reward_model
):
    rloo = _ended(
        make_run(
            project,
            kind="rloo",
            base_model=tiny,
            dataset_path=dataset,
            config={"reward_model": str(reward_model)},
        ),
        2,
    )
    shutil.rmtree(reward_model)
    client.force_login(researcher)
    answer = client.post(f"/api/v1/projects/{project.slug}/runs/{rloo.pk}/resume/")
    assert answer.status_code == 409, answer.content
    assert "cannot be resumed" in answer.json()["detail"] and "reward_model" in answer.json()["detail"]
    assert not TrainingRun.objects.filter(resumed_from=rloo).exists()


@pytest.mark.parametrize("kind", ["rloo", "grpo"])
def test_a_resumed_run_on_the_projects_prompts_trains_on_the_prompts_its_run_started_with(
    project, researcher, kind, tiny, reward_model
):
    """An RL run without data trains on the project's prompts as they were when it started; the
    trainer resumes at a position in that file, so the resumed run must read the same file, not the
    prompts the project has now."""
    for i in range(3):
        Prompt.objects.create(project=project, messages=[{"role": "user", "content": f"Old {i}?"}])
    first = make_run(
        project, kind=kind, base_model=tiny, dataset_path="", config={"reward_model": str(reward_model)}
    )
    first = _ended(first, 2)
    cfg, _ = runner_config(first)  # what its worker wrote when it started
    started_with = Path(cfg["dataset_path"]).read_text()
    Prompt.objects.create(project=project, messages=[{"role": "user", "content": "Added later?"}])

    second = run_resume(run=first, actor=researcher)
    third = run_resume(run=_ended(second, 4), actor=researcher)  # a chain reads the same file too
    for run in (second, third):
        cfg, _ = runner_config(run)
        assert Path(cfg["dataset_path"]).read_text() == started_with
        assert "Added later" not in Path(cfg["dataset_path"]).read_text()


def test_a_run_being_resumed_or_resumed_to_the_end_offers_no_resume(client, project, researcher, dataset):
    """While its resumption is queued or running, and once one finished, a run is not resumable:
    before, its status said resumable_from_step 2 and its page showed "Resume from step 2", a
    button answered "already resuming" - or, after a resumption that finished but whose clean-up
    of the old checkpoints failed, one that trained the same steps over again."""
    first = _ended(make_run(project, dataset_path=dataset), 2)
    second = run_resume(run=first, actor=researcher)
    client.force_login(researcher)
    url = f"/api/v1/projects/{project.slug}/runs/{first.pk}/"
    page = reverse("training:run_detail", args=[project.slug, first.pk])
    for state in (RunState.QUEUED, RunState.RUNNING, RunState.DONE):
        TrainingRun.objects.filter(pk=second.pk).update(state=state)
        assert client.get(url).json()["resumable_from_step"] is None, state
        assert b"Resume from step" not in client.get(page).content, state
    answer = client.post(url + "resume/")
    assert (
        answer.status_code == 409 and f"Run #{second.pk} already resumed this run" in answer.json()["detail"]
    )
    TrainingRun.objects.filter(pk=second.pk).update(state=RunState.FAILED)  # a failed resumption: again
    assert client.get(url).json()["resumable_from_step"] == 2


def test_a_resumed_run_launches_as_many_processes_as_wrote_its_checkpoint(
    project, researcher, dataset, settings
):
    """A run without config.launch ran with the worker's default number of processes (here 2: its
    checkpoint holds rng_state_0.pth and rng_state_1.pth). Before: its resumption took whatever
    default the worker that picked it up had (PREFHUB_TRAINING_NUM_PROCESSES, here 1 now), and a
    checkpoint resumes only with the processes that wrote it, so the resumed run failed (or, before
    a9c342e, trained other rows). Now the resumed run's launch names the checkpoint's count."""
    first = _ended(
        make_run(project, dataset_path=dataset, config={"save_steps": 2, "learning_rate": 1e-3}), 2
    )
    checkpoint = checkpoints_dir(first.output_path) / "checkpoint-2"
    for rank in (0, 1):
        (checkpoint / f"rng_state_{rank}.pth").write_bytes(b"rng")
    settings.PREFHUB_TRAINING_NUM_PROCESSES = 1
    second = run_resume(run=first, actor=researcher)
    assert second.config == {"save_steps": 2, "learning_rate": 1e-3, "launch": {"num_processes": 2}}
    _, launch = runner_config(second)
    assert launch == {"num_processes": 2}
    assert "--num_processes 2" in " ".join(run_services._launch_command(second, Path("c.json"), launch))

    # a run that named its processes keeps its launch as it was
    named = {"save_steps": 2, "launch": {"num_processes": 2, "accelerate_config": "ddp"}}
    third = _ended(make_run(project, dataset_path=dataset, config=named), 2)
    for rank in (0, 1):
        (checkpoints_dir(third.output_path) / "checkpoint-2" / f"rng_state_{rank}.pth").write_bytes(b"rng")
    assert run_resume(run=third, actor=researcher).config == named


def test_a_finished_chain_keeps_the_checkpoints_another_resumption_still_needs(
    project, researcher, dataset, fake_runner
):
    """A failed (checkpoint 2); B resumed it and failed (checkpoint 4); A was resumed again by C
    (queued) and B by D. D finishing must not delete A's checkpoints, which C is about to resume
    from; C finishing then deletes them."""
    first = _ended(make_run(project, dataset_path=dataset, config={"save_steps": 2}), 2)
    second = _ended(run_resume(run=first, actor=researcher), 4)
    again = run_resume(run=first, actor=researcher)
    fourth = run_resume(run=second, actor=researcher)
    assert run_execute(run_id=fourth.pk, poll_seconds=0.05).state == RunState.DONE
    assert not checkpoints_dir(second.output_path).exists()
    assert checkpoints_dir(first.output_path).is_dir()  # C's to resume from
    assert run_execute(run_id=again.pk, poll_seconds=0.05).state == RunState.DONE
    assert not checkpoints_dir(first.output_path).exists()


def test_a_resumption_that_left_no_checkpoint_points_to_the_run_it_resumed(project, researcher, dataset):
    """B resumed A (checkpoint 2) and ended before its own first checkpoint. Before: resuming B,
    or the stale sweep failing it, said to launch the run again (from scratch), although A's
    checkpoint was there to resume from. Now both name run A and its step."""
    first = _ended(make_run(project, dataset_path=dataset, config={"save_steps": 2}), 2)
    second = run_resume(run=first, actor=researcher)
    TrainingRun.objects.filter(pk=second.pk).update(state=RunState.CANCELLED)
    with pytest.raises(Conflict, match=f"Resume run #{first.pk} again instead .its checkpoint at step 2."):
        run_resume(run=TrainingRun.objects.get(pk=second.pk), actor=researcher)

    third = run_resume(run=first, actor=researcher)
    long_ago = timezone.now() - timedelta(hours=1)
    TrainingRun.objects.filter(pk=third.pk).update(
        state=RunState.RUNNING, started_at=long_ago, heartbeat_at=long_ago
    )
    assert runs_fail_stale() == 1
    third.refresh_from_db()
    assert third.state == RunState.FAILED
    assert third.error.endswith(f"Resume run #{first.pk} again instead (its checkpoint at step 2).")


def test_a_resumed_ppo_run_launches_as_many_processes_as_its_checkpoint_says(
    project, researcher, dataset, reward_model, settings
):
    """PPO's checkpoints (accelerate's save_state) hold no rng_state files; their trainer_state.json
    names the processes that wrote them, and the resuming run launches that many."""
    config = {"save_steps": 2, "reward_model": str(reward_model)}
    ppo = _ended(make_run(project, kind="ppo", dataset_path=dataset, config=config), 2)
    state = checkpoints_dir(ppo.output_path) / "checkpoint-2" / "trainer_state.json"
    state.write_text(json.dumps({"global_step": 2, "num_processes": 2}))
    settings.PREFHUB_TRAINING_NUM_PROCESSES = 1
    assert run_resume(run=ppo, actor=researcher).config == {**config, "launch": {"num_processes": 2}}
