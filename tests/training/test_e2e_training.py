"""The loop end to end, as the platform runs it: labels in the database -> export (the export
service) -> reward model run -> PPO run (each a real ``accelerate launch`` subprocess started by the
run executor, metrics streamed into the database) -> the new policy registered as a generation
endpoint -> a generation job with it creates candidates (and comparison tasks) for the next round.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from annotate.models import Annotation, Candidate, Prompt, Task
from annotate.services.tasks import TaskSpec, tasks_bulk_create
from training.models import MetricPoint, RunState
from training.services.exports import export_create, export_run
from training.services.runs import run_create, run_execute, run_register_endpoint

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

GOOD = "Yes, that is right. Thank you!"
BAD = "I am sorry, but I cannot help with that request. Is there something else I can do for you?"


@pytest.fixture
def labelled_project(make_project, labeler_in):
    """24 prompts, two candidates each; the labeler always prefers the short helpful answer."""
    project = make_project(overlap=1)
    labeler = labeler_in(project)
    prompts = Prompt.objects.bulk_create(
        [
            Prompt(
                project=project, external_id=f"p{i}", messages=[{"role": "user", "content": f"Question {i}?"}]
            )
            for i in range(24)
        ]
    )
    specs, good_first = [], []
    for i, p in enumerate(prompts):
        good = Candidate.objects.create(prompt=p, text=GOOD, model_name="m-good")
        bad = Candidate.objects.create(prompt=p, text=BAD, model_name="m-bad")
        order = [good.pk, bad.pk] if i % 2 == 0 else [bad.pk, good.pk]
        specs.append(TaskSpec(prompt_id=p.pk, candidate_ids=order))
        good_first.append(i % 2 == 0)
    tasks = tasks_bulk_create(project=project, specs=specs)
    Annotation.objects.bulk_create(
        [
            Annotation(task=t, labeler=labeler, choice="a" if first else "b", strength=2)
            for t, first in zip(tasks, good_first, strict=True)
        ]
    )
    return project


def test_labels_to_reward_model_to_ppo_to_a_generation_endpoint(
    labelled_project, make_user, tmp_path, settings
):
    from generation.tiny_model import build_tiny_model

    project = labelled_project
    researcher = make_user("researcher")
    base = str(build_tiny_model(tmp_path / "tiny"))
    settings.PREFHUB_ALLOWED_MODEL_DIRS = [str(tmp_path)]  # an admin-allowed models folder (core.paths)

    export = export_create(
        project=project,
        format="trl_conversational",
        file_type="jsonl",
        options={"test_size": 0.25},
        enqueue=False,
    )
    export = export_run(export_id=export.pk)
    assert export.row_count == 24

    def train(kind: str, config: dict, **links):
        """A ``kind`` run of the tiny base model on the export, on the CPU, executed here: it must finish."""
        run = run_create(
            project=project,
            kind=kind,
            base_model=base,
            export=export,
            config={"use_cpu": True, "max_length": 96, **config},
            actor=researcher,
            enqueue=False,
            **links,
        )
        run = run_execute(run_id=run.pk)
        assert run.state == RunState.DONE, run.error
        return run

    reward_run = train(
        "reward",
        {"learning_rate": 2e-3, "num_train_epochs": 4, "per_device_train_batch_size": 8, "logging_steps": 2},
    )
    final = reward_run.metrics["final"]
    assert final["eval_pairs"] == export.manifest["counts"]["test"] and final["eval_accuracy"] == 1.0
    assert "accelerate.commands.launch" in Path(reward_run.log_path).read_text()
    assert MetricPoint.objects.filter(run=reward_run, values__has_key="loss").exists()

    ppo_run = train(
        "ppo",
        {
            "learning_rate": 1e-3,
            "max_steps": 3,
            "rollout_batch_size": 8,
            "mini_batch_size": 4,
            "ppo_epochs": 2,
            "max_new_tokens": 8,
            "eval_prompts": 4,
            "logging_steps": 1,
        },
        reward_run=reward_run,
    )
    steps = list(MetricPoint.objects.filter(run=ppo_run, values__has_key="kl").values_list("step", flat=True))
    assert steps[:3] == [1, 2, 3]
    assert "eval_reward" in ppo_run.metrics["final"] and "eval_before_reward" in ppo_run.metrics["final"]

    endpoint = run_register_endpoint(run=ppo_run, actor=researcher)
    assert endpoint.backend == "transformers" and Path(endpoint.model) == Path(ppo_run.output_path)

    if importlib.util.find_spec("generation.services") is None:  # the generation app is built in parallel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(endpoint.model)
        model = AutoModelForCausalLM.from_pretrained(endpoint.model)
        ids = tok.apply_chat_template(
            [{"role": "user", "content": "Question 1?"}],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        out = model.generate(**ids, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
        assert out.shape[1] > ids["input_ids"].shape[1]
        pytest.skip(
            "generation.services is not there yet: the endpoint's model was loaded and generated directly"
        )

    from generation.services import job_create, job_release, job_run_inline

    tasks_before = Task.objects.filter(project=project).count()
    job = job_create(project=project, endpoints=[endpoint], k=2, enqueue=False, actor=researcher)
    job = job_run_inline(job=job)
    assert job.state == "done", job.error
    new = Candidate.objects.filter(endpoint=endpoint, generation_job=job)
    assert new.count() == 24 * 2
    assert Task.objects.filter(project=project).count() == tasks_before  # staged: reviewed first
    job_release(job=job, which="all", actor=researcher)
    assert Task.objects.filter(project=project).count() > tasks_before  # the next round of comparisons
