"""Training run services: validation on create, the subprocess executor (metrics streamed into the
database, failure recorded with the log tail, cancel by SIGTERM, redelivery), endpoint registration.

The executor tests swap the launch command for a small script that speaks the runners' metrics
protocol, so they exercise the process handling in a second or two; the real runners run in the
slow tests (test_runner_*, test_ppo, test_e2e_training).
"""

from __future__ import annotations

import json
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings

from annotate.errors import Conflict, InvalidInput
from annotate.models import Prompt
from tests.training.conftest import make_run
from training.models import Export, ExportState, MetricPoint, RunState, TrainingRun
from training.runners.configs import ConfigError, config_for
from training.runners.launch import command
from training.runners.models import atomic_output
from training.runners.protocol import parse_event
from training.services import runs as run_services
from training.services.runs import run_cancel, run_create, run_execute, run_register_endpoint

pytestmark = pytest.mark.django_db

FAKE_RUNNER = textwrap.dedent(
    """
    import json, os, signal, sys, time
    cfg = json.load(open(sys.argv[1]))
    mode = sys.argv[2]
    out = cfg["output_dir"]
    tmp = out + ".tmp-%d" % os.getpid()
    os.makedirs(tmp)
    def emit(**kw):
        print(json.dumps(kw), flush=True)
    print("loading <model> & data", flush=True)
    for step in (1, 2, 3):
        emit(event="metrics", step=step, loss=1.0 / step, accuracy=0.5 + step / 10)
    if mode == "fail":
        print("Traceback: something broke", flush=True)
        emit(event="error", kind="data", message="The dataset is empty: the export has no comparisons yet.")
        sys.exit(1)
    if mode == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "hang":
        signal.signal(signal.SIGTERM, signal.SIG_IGN) if len(sys.argv) > 3 else None
        while True:
            time.sleep(0.1)
    open(os.path.join(tmp, "config.json"), "w").write("{}")
    os.rename(tmp, out)
    emit(event="final", step=3, eval_accuracy=0.8, output_dir=out)
    """
)


@pytest.fixture
def project(make_project):
    return make_project()


@pytest.fixture
def dataset(tmp_path):
    folder = Path(settings.PREFHUB_DATA_DIR) / "datasets"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"pairs-{tmp_path.name}.jsonl"
    rows = [{"prompt": f"Q{i}?", "chosen": "yes", "rejected": "no no no"} for i in range(8)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def fake_runner(tmp_path, monkeypatch):
    script = tmp_path / "fake_runner.py"
    script.write_text(FAKE_RUNNER)

    def use(mode: str, *extra: str):
        monkeypatch.setattr(
            run_services,
            "_launch_command",
            lambda run, config_path, launch: [sys.executable, str(script), str(config_path), mode, *extra],
        )

    return use


def _done_run(project, kind="reward", **extra) -> TrainingRun:
    out = Path(settings.PREFHUB_DATA_DIR) / "models" / f"{kind}-{TrainingRun.objects.count()}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text("{}")
    return make_run(
        project, kind=kind, dataset_path="x.jsonl", state=RunState.DONE, output_path=str(out), **extra
    )


# --- create ------------------------------------------------------------------------------------


def test_create_fills_paths_and_keeps_options(project, dataset):
    run = run_create(
        project=project,
        kind="reward",
        base_model="tiny",
        dataset_path=dataset,
        config={"learning_rate": 1e-3},
    )
    assert run.state == RunState.QUEUED
    assert run.output_path.endswith(f"run-{run.pk}") and run.log_path.endswith(f"run-{run.pk}.log")
    assert run.config == {"learning_rate": 1e-3}


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"kind": "nope"}, "kind", "kind must be"),
        ({"kind": "reward"}, "export", "Choose an export"),
        ({"kind": "reward", "dataset_path": "OUTSIDE"}, "dataset_path", "data folder"),
        ({"kind": "reward", "dataset_path": "MISSING"}, "dataset_path", "No dataset file"),
        # outside the data folders the answer is the same whether or not the file exists (no oracle)
        ({"kind": "reward", "dataset_path": "/no/such.jsonl"}, "dataset_path", "data folder"),
        (
            {"kind": "reward", "dataset_path": "/x/" + "a" * 5000 + ".jsonl"},
            "dataset_path",
            "usable file path",
        ),
        ({"kind": "reward", "base_model": "", "use_data": True}, "base_model", "base model"),
        (
            {"kind": "reward", "use_data": True, "config": {"learning_rat": 1}},
            "config",
            "Unknown reward option",
        ),
        (
            {"kind": "reward", "use_data": True, "config": {"output_dir": "/tmp/x"}},
            "config",
            "set by the platform",
        ),
        (
            {"kind": "reward", "use_data": True, "config": {"num_train_epochs": "two"}},
            "config",
            "must be a number",
        ),
        (
            {"kind": "dpo", "use_data": True, "config": {"precompute_ref_log_probs": 1}},
            "config",
            "true or false",
        ),
        ({"kind": "ppo", "use_data": True}, "reward_run", "needs a reward model"),
        ({"kind": "reward", "use_data": True, "reward_model": "/x"}, "reward_run", "Only PPO"),
    ],
)
def test_create_refuses_bad_requests(project, dataset, tmp_path, kwargs, field, message):
    kwargs = dict(kwargs)
    if kwargs.pop("use_data", False):
        kwargs["dataset_path"] = dataset
    if kwargs.get("dataset_path") == "MISSING":
        kwargs["dataset_path"] = str(Path(dataset).parent / "missing.jsonl")
    if kwargs.get("dataset_path") == "OUTSIDE":
        outside = tmp_path / "outside.jsonl"
        outside.write_text(Path(dataset).read_text())
        kwargs["dataset_path"] = str(outside)
    kwargs.setdefault("base_model", "tiny")
    with pytest.raises(InvalidInput) as err:
        run_create(project=project, **kwargs)
    assert err.value.field == field
    assert message in err.value.message


def test_create_checks_the_export(project, make_project):
    empty = Export.objects.create(
        project=project, version=1, format="trl", state=ExportState.DONE, path="/nowhere"
    )
    with pytest.raises(InvalidInput, match="files are missing"):
        run_create(project=project, kind="reward", base_model="tiny", export=empty)
    queued = Export.objects.create(project=project, version=2, format="trl")
    with pytest.raises(InvalidInput, match="not finished"):
        run_create(project=project, kind="reward", base_model="tiny", export=queued)
    other = make_project()
    foreign = Export.objects.create(project=other, version=1, format="trl", state=ExportState.DONE, path="/x")
    with pytest.raises(InvalidInput, match="another project"):
        run_create(project=project, kind="reward", base_model="tiny", export=foreign)
    raw = Export.objects.create(project=project, version=3, format="raw", state=ExportState.DONE, path="/x")
    with pytest.raises(
        InvalidInput, match=r"^An export in the Raw annotations table format cannot be trained on"
    ):
        run_create(project=project, kind="reward", base_model="tiny", export=raw)
    openai = Export.objects.create(
        project=project, version=4, format="openai", state=ExportState.DONE, path="/x"
    )
    with pytest.raises(InvalidInput, match=r"^An export in the OpenAI preference fine-tuning format cannot"):
        run_create(project=project, kind="reward", base_model="tiny", export=openai)


def test_export_with_no_rows_is_refused(project):
    folder = Path(settings.PREFHUB_DATA_DIR) / "exports-test" / "empty"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text("")
    export = Export.objects.create(
        project=project,
        version=1,
        format="trl",
        state=ExportState.DONE,
        path=str(folder),
        manifest={"files": {"train": {"path": "train.jsonl", "rows": 0}}},
    )
    with pytest.raises(InvalidInput, match="empty"):
        run_create(project=project, kind="reward", base_model="tiny", export=export)


def test_runs_chain_base_and_reward_runs(project, dataset):
    reward = _done_run(project, "reward")
    policy = _done_run(project, "dpo")
    run = run_create(project=project, kind="ppo", base_run=policy, reward_run=reward, dataset_path=dataset)
    assert run.base_model == policy.output_path
    with pytest.raises(InvalidInput, match="reward model cannot be the policy"):
        run_create(project=project, kind="ppo", base_run=reward, reward_run=reward, dataset_path=dataset)
    with pytest.raises(InvalidInput, match="finished reward run"):
        run_create(project=project, kind="ppo", base_model="tiny", reward_run=policy, dataset_path=dataset)


def test_ppo_without_data_uses_the_project_prompts(project):
    reward = _done_run(project, "reward")
    with pytest.raises(InvalidInput, match="no prompts"):
        run_create(project=project, kind="ppo", base_model="tiny", reward_run=reward)
    Prompt.objects.create(project=project, messages=[{"role": "user", "content": "Hi?"}])
    run = run_create(project=project, kind="ppo", base_model="tiny", reward_run=reward)
    cfg, launch = run_services.runner_config(run)
    assert cfg["reward_model"] == reward.output_path and launch == {}
    rows = [json.loads(line) for line in Path(cfg["dataset_path"]).read_text().splitlines()]
    assert rows == [{"prompt": [{"role": "user", "content": "Hi?"}]}]


def test_launch_options_and_command(project, dataset, tmp_path):
    run = run_create(
        project=project,
        kind="dpo",
        base_model="tiny",
        dataset_path=dataset,
        config={"beta": 0.2, "launch": {"num_processes": 2}},
    )
    cfg, launch = run_services.runner_config(run)
    assert cfg["beta"] == 0.2 and "launch" not in cfg and launch == {"num_processes": 2}
    config_for("dpo", cfg)  # the file the runner gets is a valid config
    cmd = command("dpo", "/c.json", num_processes=2)
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"] and "--multi_gpu" in cmd
    assert cmd[-5:] == ["-m", "training.runners", "dpo", "--config", "/c.json"]
    own = tmp_path / "ds.yaml"
    own.write_text("compute_environment: LOCAL_MACHINE\n")
    assert command("reward", "/c.json", accelerate_config=str(own))[3:5] == ["--config_file", str(own)]
    assert command("reward", "/c.json", launcher="python")[1:] == [
        "-m",
        "training.runners",
        "reward",
        "--config",
        "/c.json",
    ]
    with pytest.raises(InvalidInput, match="num_processes"):
        run_create(
            project=project,
            kind="dpo",
            base_model="t",
            dataset_path=dataset,
            config={"launch": {"num_processes": 0}},
        )


def test_config_dataclasses_refuse_what_they_cannot_run():
    with pytest.raises(ConfigError, match="reward_model is required"):
        config_for("ppo", {"base_model": "a", "output_dir": "b"})
    with pytest.raises(ConfigError, match="multiple of mini_batch_size"):
        config_for(
            "ppo", {"base_model": "a", "output_dir": "b", "reward_model": "r", "rollout_batch_size": 10}
        )
    assert (
        config_for("reward", {"base_model": "a", "output_dir": "b", "num_train_epochs": 2}).num_train_epochs
        == 2.0
    )


# --- execute -----------------------------------------------------------------------------------


def test_execute_streams_metrics_and_finishes(project, dataset, fake_runner):
    fake_runner("ok")
    run = run_create(project=project, kind="reward", base_model="tiny", dataset_path=dataset)
    run = run_execute(run_id=run.pk, poll_seconds=0.05)
    assert run.state == RunState.DONE, run.error
    points = list(MetricPoint.objects.filter(run=run).values_list("step", "values"))
    assert [s for s, _ in points] == [1, 2, 3]
    assert points[0][1] == {"loss": 1.0, "accuracy": 0.6}
    assert run.metrics["final"]["eval_accuracy"] == 0.8
    assert run.metrics["latest"]["step"] == 3 and run.pid is None
    assert run.heartbeat_at is not None and run.heartbeat_at >= run.started_at  # the executor beats
    assert Path(run.output_path, "config.json").is_file()
    log = Path(run.log_path).read_text()
    assert "loading <model> & data" in log and "exit code 0" in log
    # A redelivered message finds the run taken and does nothing.
    again = run_execute(run_id=run.pk)
    assert again.state == RunState.DONE and MetricPoint.objects.filter(run=run).count() == 3


def test_a_failing_run_records_the_message_and_log_tail(project, dataset, fake_runner):
    fake_runner("fail")
    run = run_create(project=project, kind="reward", base_model="tiny", dataset_path=dataset)
    run = run_execute(run_id=run.pk, poll_seconds=0.05)
    assert run.state == RunState.FAILED
    assert run.error.startswith("The dataset is empty")
    assert "Traceback: something broke" in run.error
    assert not Path(run.output_path).exists()
    assert not list(Path(run.output_path).parent.glob(f"run-{run.pk}.tmp-*"))  # no half model
    assert MetricPoint.objects.filter(run=run).count() == 3


def test_a_killed_trainer_fails_the_run_not_the_worker(project, dataset, fake_runner):
    fake_runner("crash")
    run = run_create(project=project, kind="reward", base_model="tiny", dataset_path=dataset)
    run = run_execute(run_id=run.pk, poll_seconds=0.05)
    assert run.state == RunState.FAILED
    assert "killed by signal 9" in run.error
    assert not list(Path(run.output_path).parent.glob(f"run-{run.pk}.tmp-*"))


def _cancel_soon(run_id: int, delay: float = 0.6) -> threading.Thread:
    def go():
        time.sleep(delay)
        TrainingRun.objects.filter(pk=run_id).update(cancel_requested=True)

    t = threading.Thread(target=go)
    t.start()
    return t


@pytest.mark.django_db(transaction=True)
def test_cancel_stops_the_process_group(make_project, dataset, fake_runner):
    fake_runner("hang")
    project = make_project()
    run = run_create(project=project, kind="reward", base_model="tiny", dataset_path=dataset)
    t = _cancel_soon(run.pk)
    started = time.monotonic()
    run = run_execute(run_id=run.pk, poll_seconds=0.05)
    t.join()
    assert run.state == RunState.CANCELLED
    assert time.monotonic() - started < 20
    assert "SIGTERM" in Path(run.log_path).read_text()
    assert not list(Path(run.output_path).parent.glob(f"run-{run.pk}.tmp-*"))


@pytest.mark.django_db(transaction=True)
def test_a_run_the_sweep_failed_stops_and_stays_failed(make_project, dataset, fake_runner):
    """The sweep failed a run whose worker was in fact alive (its heartbeat was late): the worker
    stops the trainer at its next beat instead of training on, and does not overwrite the failure
    with its own end (before: it trained on, and ended the run "cancelled" or "done")."""
    from datetime import timedelta

    from django.utils import timezone

    from training.services.runs import runs_fail_stale

    fake_runner("hang")
    project = make_project()
    run = run_create(project=project, kind="reward", base_model="tiny", dataset_path=dataset)

    def sweep_then_cancel():
        time.sleep(0.6)
        assert runs_fail_stale(now=timezone.now() + timedelta(hours=1)) == 1
        time.sleep(4)  # before the fix the run trains on; the cancel is what ended it then
        TrainingRun.objects.filter(pk=run.pk).update(cancel_requested=True)

    t = threading.Thread(target=sweep_then_cancel)
    t.start()
    run = run_execute(run_id=run.pk, poll_seconds=0.05)
    t.join()
    assert run.state == RunState.FAILED
    assert "stopped answering" in run.error
    log_text = Path(run.log_path).read_text()
    assert "the run was ended elsewhere (now failed)" in log_text
    assert "cancel requested" not in log_text  # stopped at a beat, not by the later cancel
    assert not list(Path(run.output_path).parent.glob(f"run-{run.pk}.tmp-*"))


@pytest.mark.django_db(transaction=True)
def test_cancel_escalates_to_sigkill(make_project, dataset, fake_runner, settings):
    settings.PREFHUB_TRAINING_CANCEL_GRACE_S = 0.5
    fake_runner("hang", "ignore-sigterm")
    project = make_project()
    run = run_create(project=project, kind="reward", base_model="tiny", dataset_path=dataset)
    t = _cancel_soon(run.pk, 0.3)
    run = run_execute(run_id=run.pk, poll_seconds=0.05)
    t.join()
    assert run.state == RunState.CANCELLED
    assert "SIGKILL" in Path(run.log_path).read_text()


def test_cancel_of_a_queued_run_is_immediate(project, dataset):
    run = run_create(project=project, kind="reward", base_model="tiny", dataset_path=dataset)
    run = run_cancel(run=run)
    assert run.state == RunState.CANCELLED
    assert run_execute(run_id=run.pk).state == RunState.CANCELLED  # the queued message does nothing
    with pytest.raises(Conflict):
        run_cancel(run=run)


def test_a_run_whose_export_vanished_fails_cleanly(project, fake_runner):
    fake_runner("ok")
    folder = Path(settings.PREFHUB_DATA_DIR) / "exports-test" / "gone"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n')
    export = Export.objects.create(
        project=project, version=1, format="trl", state=ExportState.DONE, path=str(folder)
    )
    run = run_create(project=project, kind="reward", base_model="tiny", export=export)
    (folder / "train.jsonl").unlink()
    run = run_execute(run_id=run.pk)
    assert run.state == RunState.FAILED
    assert run.error == "The run could not start: The export's files are missing."


# --- register ---------------------------------------------------------------------------------


def test_register_endpoint_closes_the_loop(project, make_user):
    policy = _done_run(project, "ppo")
    endpoint = run_register_endpoint(run=policy, actor=make_user())
    assert endpoint.backend == "transformers" and endpoint.model == policy.output_path
    assert endpoint.project == project
    assert run_register_endpoint(run=policy) == endpoint  # idempotent
    with pytest.raises(InvalidInput, match="reward model cannot"):
        run_register_endpoint(run=_done_run(project, "reward"))
    running = _done_run(project, "dpo")
    TrainingRun.objects.filter(pk=running.pk).update(state=RunState.RUNNING)
    running.refresh_from_db()
    with pytest.raises(Conflict):
        run_register_endpoint(run=running)


# --- runner plumbing (no model) ----------------------------------------------------------------


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "model"
    with pytest.raises(RuntimeError), atomic_output(str(out)) as tmp:
        (tmp / "weights.bin").write_text("half")
        raise RuntimeError("boom")
    assert not out.exists() and not list(tmp_path.iterdir())
    with atomic_output(str(out)) as tmp:
        (tmp / "weights.bin").write_text("whole")
    assert (out / "weights.bin").read_text() == "whole" and len(list(tmp_path.iterdir())) == 1


def test_metric_lines_are_told_apart_from_log_text():
    assert parse_event('{"event": "metrics", "step": 1, "loss": 0.5}\n') == {
        "event": "metrics",
        "step": 1,
        "loss": 0.5,
    }
    assert parse_event("{'not': json}") is None
    assert parse_event("loss 0.5") is None


def test_runs_whose_worker_died_are_failed_by_the_sweep(project):
    from datetime import timedelta

    from django.utils import timezone

    from training.models import RunState, TrainingRun
    from training.services.runs import runs_fail_stale

    now = timezone.now()

    def running(**kw):
        return TrainingRun.objects.create(
            project=project,
            kind="ppo",
            base_model="tiny",
            state=RunState.RUNNING,
            started_at=now - timedelta(hours=1),
            **kw,
        )

    dead = running(heartbeat_at=now - timedelta(minutes=10))
    never_beat = running()
    alive = running(heartbeat_at=now - timedelta(seconds=5))
    assert runs_fail_stale(now=now) == 2
    states = dict(TrainingRun.objects.values_list("pk", "state"))
    assert states[dead.pk] == states[never_beat.pk] == RunState.FAILED
    assert states[alive.pk] == RunState.RUNNING
    dead.refresh_from_db()
    assert "stopped answering" in dead.error and dead.finished_at is not None
    assert runs_fail_stale(now=now) == 0
