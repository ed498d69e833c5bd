"""Probe: ``evaluate_reward`` on pairs longer than ``--max-length``. Before, pairs whose replies
differ only past the cut were scored as identical inputs (ties, half a correct pair each) without a
word: a file of nothing else printed "accuracy 0.500" as if it were a measurement. Now such a file
is refused naming the max length, before the model is loaded, and a file with some of them says
how many were scored as ties."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

LONG = "word " * 120


@pytest.fixture(scope="module")
def reward_model(tiny, tmp_path_factory):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    rm = tmp_path_factory.mktemp("rm")
    AutoModelForSequenceClassification.from_pretrained(tiny, num_labels=1).save_pretrained(rm)
    AutoTokenizer.from_pretrained(tiny).save_pretrained(rm)
    return str(rm)


def _file(tmp_path, rows) -> str:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_all_pairs_identical_after_the_cut_is_refused(tmp_path, reward_model, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("training.runners.reward.load_reward_model", no_model)
    path = _file(
        tmp_path, [{"prompt": f"Q{i}", "chosen": LONG + "yes", "rejected": LONG + "no"} for i in range(3)]
    )
    with pytest.raises(CommandError, match=r"No pair differs within max_length=16 tokens: all 3 pairs"):
        call_command("evaluate_reward", "--model", reward_model, "--dataset", path, "--max-length", "16")


def test_some_pairs_identical_after_the_cut_are_counted(tmp_path, reward_model):
    rows = [{"prompt": "Q1", "chosen": LONG + "yes", "rejected": LONG + "no"}]
    rows += [{"prompt": "Q2", "chosen": "yes", "rejected": "no"}]
    path = _file(tmp_path, rows)

    def evaluate(*extra: str) -> str:
        buf = io.StringIO()
        call_command(
            "evaluate_reward",
            "--model",
            reward_model,
            "--dataset",
            path,
            "--max-length",
            "16",
            *extra,
            stdout=buf,
        )
        return buf.getvalue()

    figures = json.loads(evaluate("--json"))
    assert figures["pairs"] == 2 and figures["cut_identical_pairs"] == 1
    assert "(1 pairs read the same once cut to --max-length 16: scored as ties)" in evaluate()
