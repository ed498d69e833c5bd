"""TRL exports go straight into TRL trainers: one RewardTrainer step on the standard format (with
the margin column) and one DPOTrainer step on the conversational format, on a tiny offline model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotate.models import Annotation
from tests.conftest import add_tasks
from training.services.exports import export_create, export_run

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def tiny_model(tmp_path_factory):
    from generation.tiny_model import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny")))


@pytest.fixture
def project(make_project, labeler_in):
    project = make_project(overlap=1)
    tasks = add_tasks(project, prompts=8, candidates_per_prompt=2)
    user = labeler_in(project)
    for i, task in enumerate(tasks):
        Annotation.objects.create(task=task, labeler=user, choice="ab"[i % 2], strength=1 + i % 3)
    return project


def _export(project, fmt, file_type):
    export = export_create(
        project=project, format=fmt, file_type=file_type, options={"test_size": 0.25}, enqueue=False
    )
    return export_run(export_id=export.pk)


def _load(export, tmp_path):
    import datasets

    loader = "parquet" if export.file_type == "parquet" else "json"
    files = {s: str(Path(export.path) / f["path"]) for s, f in export.manifest["files"].items()}
    return datasets.load_dataset(loader, data_files=files, cache_dir=str(tmp_path / "hf"))


def test_reward_trainer_takes_the_standard_export(project, tiny_model, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    ds = _load(_export(project, "trl", "parquet"), tmp_path)
    assert ds["train"].column_names == ["prompt", "chosen", "rejected", "margin"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    before = [p.detach().clone() for p in model.parameters()]
    args = RewardConfig(
        output_dir=str(tmp_path / "rm"), max_steps=1, per_device_train_batch_size=2, use_cpu=True,
        report_to=[], save_strategy="no", logging_steps=1, max_length=128,
    )  # fmt: skip
    trainer = RewardTrainer(
        model=model, args=args, processing_class=tokenizer, train_dataset=ds["train"], eval_dataset=ds["test"]
    )
    result = trainer.train()
    assert result.global_step == 1
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters(), strict=True))


def test_dpo_trainer_takes_the_conversational_export(project, tiny_model, tmp_path):
    from trl import DPOConfig, DPOTrainer

    export = _export(project, "trl_conversational", "jsonl")
    first = json.loads((Path(export.path) / "train.jsonl").read_text().splitlines()[0])
    assert first["prompt"][-1]["role"] == "user" and first["chosen"][0]["role"] == "assistant"
    ds = _load(export, tmp_path)
    args = DPOConfig(
        output_dir=str(tmp_path / "dpo"), max_steps=1, per_device_train_batch_size=2, use_cpu=True,
        report_to=[], save_strategy="no", logging_steps=1, max_length=128,
    )  # fmt: skip
    trainer = DPOTrainer(model=tiny_model, args=args, train_dataset=ds["train"])
    assert trainer.train().global_step == 1


def test_kto_export_loads_as_unpaired_preferences(project, tmp_path):
    ds = _load(_export(project, "trl_unpaired", "jsonl"), tmp_path)
    labels = list(ds["train"]["label"]) + list(ds["test"]["label"])
    assert labels.count(True) == labels.count(False) == 8
