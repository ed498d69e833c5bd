"""A reward run trained on certain labels and judged on a held-out file with soft labels.

Before: whether the run's held-out pairs kept their ``p_chosen`` hung on the *training* file having
soft labels; a run trained on a file without ``p_chosen`` (a majority-vote export, a hand-made file)
with ``eval_dataset_path`` naming a file with soft labels reported no ``eval_soft_accuracy`` /
``eval_soft_log_loss``, silently, while ``evaluate_reward`` on that same held-out file and model
gave them. Now the held-out pairs keep the ``p_chosen`` their file has, whatever the training file
has, and the run's figures after training are ``evaluate_reward``'s."""

from __future__ import annotations

import pytest

from tests.training.conftest import runner_config, write_jsonl
from training.runners import reward
from training.services.evaluation import evaluate_reward_model

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def _rows(n: int, p_chosen: list[float] | None = None) -> list[dict]:
    rows = [
        {"prompt": f"Question {i}?", "chosen": "Yes. Good answer.", "rejected": "No. Bad answer."}
        for i in range(n)
    ]
    for row, p in zip(rows, p_chosen or [], strict=False):
        row["p_chosen"] = p
    return rows


def test_a_run_on_certain_labels_judges_soft_held_out_pairs_against_them(tiny, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", _rows(8))
    held = write_jsonl(tmp_path / "held.jsonl", _rows(4, [0.2, 0.5, 0.9, 1.0]))
    metrics = reward.run(
        runner_config("reward", tiny, train, tmp_path / "rm", max_steps=1, eval_dataset_path=held)
    )
    assert metrics["used_soft_labels"] is False  # trained on certain labels
    assert "eval_before_soft_accuracy" in metrics and "eval_before_soft_log_loss" in metrics
    figures = evaluate_reward_model(str(tmp_path / "rm"), held)
    assert metrics["eval_soft_accuracy"] == pytest.approx(figures["soft_accuracy"], abs=1e-6)
    assert metrics["eval_soft_log_loss"] == pytest.approx(figures["soft_log_loss"], abs=1e-6)
    # by hand: each pair's expected agreement is p where the model prefers the chosen reply, else 1 - p
    assert metrics["eval_accuracy"] in (0.0, 1.0)  # the 4 pairs are one and the same pair of replies
    agree = [p if metrics["eval_accuracy"] == 1.0 else 1 - p for p in (0.2, 0.5, 0.9, 1.0)]
    assert metrics["eval_soft_accuracy"] == pytest.approx(sum(agree) / 4)


def test_a_run_on_soft_labels_with_a_certain_held_out_file_reports_no_soft_figures(tiny, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", _rows(8, [0.7] * 8))
    held = write_jsonl(tmp_path / "held.jsonl", _rows(4))
    metrics = reward.run(
        runner_config("reward", tiny, train, tmp_path / "rm", max_steps=1, eval_dataset_path=held)
    )
    assert metrics["used_soft_labels"] is True
    assert metrics["eval_pairs"] == 4
    assert not any("soft" in key for key in metrics if key.startswith("eval_"))
