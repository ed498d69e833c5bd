"""Probe: a base or reward model that is not a model (an empty folder, a tokenizer only, a file, a
missing path) or, for PPO/RLOO/GRPO and ``evaluate_reward``, a reward model that is no sequence
classifier is refused by option name before any data or model is loaded.

Before: ``train`` loaded the data and models first (10-20 s) and then said "Cannot load a tokenizer
from '<dir>': Couldn't instantiate the backend tokenizer from one of: " (an empty folder) or "Repo id
must be in the form 'repo_name'..." (a missing reward model); a causal LM given as ``--reward-model``
(or to ``run_create``, or to ``evaluate_reward --model``) was loaded as a sequence classifier with a
randomly initialised score head, and PPO trained against (and evaluate_reward reported) noise."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotate.errors import InvalidInput


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        "".join(json.dumps({"prompt": f"Q{i}", "chosen": "a", "rejected": "b"}) + "\n" for i in range(4))
    )
    return str(path)


@pytest.fixture
def not_models(tmp_path, tiny):
    empty = tmp_path / "empty"
    empty.mkdir()
    tokenizer_only = tmp_path / "tokenizer-only"
    tokenizer_only.mkdir()
    for f in Path(tiny).iterdir():
        if f.name.startswith(("tokenizer", "special_tokens")):
            shutil.copy(f, tokenizer_only)
    a_file = tmp_path / "model.safetensors"
    a_file.write_text("x")
    return {
        "empty": (str(empty), "it has no config.json"),
        "tokenizer-only": (str(tokenizer_only), "it has no config.json"),
        "file": (str(a_file), "No model folder at"),
        "missing": (str(tmp_path / "nowhere"), "No model folder at"),
    }


@pytest.mark.parametrize("which", ["empty", "tokenizer-only", "file", "missing"])
def test_train_refuses_a_base_model_that_is_not_a_model(tmp_path, dataset, no_training, not_models, which):
    path, message = not_models[which]
    out = tmp_path / "out"
    with pytest.raises(CommandError, match=rf"^--base-model: .*{message}"):
        call_command("train", "reward", "--dataset", dataset, "--base-model", path, "--out", str(out))
    assert not out.exists()


@pytest.mark.parametrize("which", ["empty", "missing"])
def test_train_refuses_a_reward_model_that_is_not_a_model(
    tmp_path, dataset, no_training, not_models, tiny, which
):
    path, message = not_models[which]
    with pytest.raises(CommandError, match=rf"^--reward-model: .*{message}"):
        call_command(
            "train", "ppo", "--dataset", dataset, "--base-model", tiny, "--reward-model", path,
            "--out", str(tmp_path / "out"),
        )  # fmt: skip


def test_train_refuses_a_causal_lm_as_the_reward_model(tmp_path, dataset, no_training, tiny):
    with pytest.raises(
        CommandError, match=r"^--reward-model: .*is not a reward model \(architecture LlamaForCausalLM"
    ):
        call_command(
            "train", "rloo", "--dataset", dataset, "--base-model", tiny, "--reward-model", tiny,
            "--out", str(tmp_path / "out"),
        )  # fmt: skip


@pytest.mark.django_db
def test_run_create_refuses_a_causal_lm_as_the_reward_model(make_project, dataset, tiny):
    from training.models import TrainingRun
    from training.services.runs import run_create

    project = make_project()
    with pytest.raises(InvalidInput) as err:
        run_create(
            project=project, kind="ppo", base_model=tiny, dataset_path=dataset, reward_model=tiny,
            restrict_dataset_path=False,
        )  # fmt: skip
    assert err.value.field == "reward_model" and "is not a reward model" in err.value.message
    assert not TrainingRun.objects.exists()


def test_evaluate_reward_refuses_a_causal_lm(tmp_path, dataset, tiny):
    with pytest.raises(CommandError, match=r"^--model: .*is not a reward model"):
        call_command("evaluate_reward", "--model", tiny, "--dataset", dataset)


def test_a_sequence_classifier_is_accepted_as_the_reward_model(tmp_path, dataset, no_training, tiny):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    rm = tmp_path / "rm"
    AutoModelForSequenceClassification.from_pretrained(tiny, num_labels=1).save_pretrained(rm)
    AutoTokenizer.from_pretrained(tiny).save_pretrained(rm)
    # it got as far as training (the command reports the fixture's refusal as its failure)
    with pytest.raises(CommandError, match="trained or launched despite"):
        call_command(
            "train", "ppo", "--dataset", dataset, "--base-model", tiny, "--reward-model", str(rm),
            "--out", str(tmp_path / "out"),
        )  # fmt: skip
