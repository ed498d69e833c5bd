"""Probe: ``evaluate_reward`` on a reward model the platform trained reads each pair as the run
read it. Before, ``--max-length`` defaulted to 512 whatever the model was trained with, so the
held-out file of a run trained with another ``max_length`` was cut differently (here: not at all)
and the command printed other figures than the run's own held-out evaluation of the same pairs
and model. Now the default is the run's ``max_length`` (its ``prefhub_run.json``), 512 for a model
without one, and ``--max-length`` still wins."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from tests.training.conftest import runner_config, write_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

LONG = " ".join(f"The sky was blue on day number {i} of the long trip." for i in range(12))
PAIRS = [
    (LONG + " Is the sky blue?", "Yes, on a clear day it is blue.", "No."),
    (LONG + " What is 2+2?", "2+2 is 4.", "Fish."),
    (LONG + " Name a colour.", "Red is a colour.", "I will not."),
    (LONG + " Say hello.", "Hello! How can I help?", "Go away."),
]


def _rows(pairs):
    return [
        {
            "prompt": [{"role": "user", "content": p}],
            "chosen": [{"role": "assistant", "content": good}],
            "rejected": [{"role": "assistant", "content": bad}],
        }
        for p, good, bad in pairs
    ]


@pytest.fixture(scope="module")
def trained(zoo_model, tmp_path_factory):
    from training.runners import reward

    folder = tmp_path_factory.mktemp("rm-run")
    train = write_jsonl(folder / "train.jsonl", _rows(PAIRS[:2]))
    held = write_jsonl(folder / "test.jsonl", _rows(PAIRS[2:]))
    cfg = runner_config(
        "reward", zoo_model("llama3"), train, folder / "rm", eval_dataset_path=held, max_length=48,
        max_steps=2, learning_rate=1e-2,
    )  # fmt: skip
    final = reward.run(cfg)
    return str(folder / "rm"), held, final


def _evaluate(model: str, data: str, *argv: str) -> dict:
    out = io.StringIO()
    call_command("evaluate_reward", "--model", model, "--dataset", data, "--json", *argv, stdout=out)
    return json.loads(out.getvalue())


def test_the_command_reads_the_pairs_as_the_run_did(trained):
    model, held, final = trained
    figures = _evaluate(model, held)
    assert figures["pairs"] == final["eval_pairs"] == 2
    assert figures["margin"] == pytest.approx(final["eval_margin"], abs=1e-5)
    assert figures["reward"] == pytest.approx(final["eval_reward"], abs=1e-5)


def test_max_length_still_wins(trained):
    model, held, final = trained
    longer = _evaluate(model, held, "--max-length", "512")
    assert longer["reward"] != pytest.approx(final["eval_reward"], abs=1e-5)  # the whole prompt read
    assert _evaluate(model, held, "--max-length", "48")["margin"] == pytest.approx(
        final["eval_margin"], abs=1e-5
    )
