"""Held-out figures against soft labels (``p_chosen``).

Before: a reward run on soft labels trained on them, but judged itself on the held-out pairs as if
every row were certain: ``accuracy`` counts a pair right when the model scores the row's chosen
reply higher, also for a row whose ``p_chosen`` says the labelers (by the reliability model) more
likely preferred the other reply. Accuracy keeps its meaning (agreement with the row's label); held-
out rows with soft labels now add what a soft target is judged by: ``soft_accuracy``, the expected
agreement with a label drawn with probability ``p_chosen`` (ties count half), and ``soft_log_loss``,
the model's Bradley-Terry cross-entropy against ``p_chosen`` (the training loss's own figure)."""

from __future__ import annotations

import io
import math

import pytest
from django.core.management import call_command

from tests.training.conftest import runner_config, write_jsonl
from training.runners import reward
from training.services.evaluation import evaluate_reward_model, pair_figures


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_soft_figures_match_a_hand_computation():
    chosen, rejected = [1.0, 0.0, 2.0], [0.5, 2.0, 2.0]  # d = 0.5, -2, 0 (a tie)
    p = [0.8, 0.3, 0.6]
    figures = pair_figures(chosen, rejected, p_chosen=p)
    assert figures["accuracy"] == pytest.approx((1 + 0 + 0.5) / 3)  # the rows' labels, as before
    assert figures["soft_accuracy"] == pytest.approx((0.8 + 0.7 + 0.5) / 3)
    expected = (
        -(
            (0.8 * _log_sigmoid(0.5) + 0.2 * _log_sigmoid(-0.5))
            + (0.3 * _log_sigmoid(-2.0) + 0.7 * _log_sigmoid(2.0))
            + (0.6 * _log_sigmoid(0.0) + 0.4 * _log_sigmoid(0.0))
        )
        / 3
    )
    assert figures["soft_log_loss"] == pytest.approx(expected, rel=1e-9)
    assert figures["soft_log_loss"] == pytest.approx(0.6647, abs=1e-4)  # (0.5741 + 0.7269 + 0.6931) / 3


def test_certain_rows_give_no_soft_figures_and_large_margins_stay_finite():
    assert "soft_accuracy" not in pair_figures([1.0], [0.0])
    assert "soft_accuracy" not in pair_figures([1.0], [0.0], p_chosen=[1.0])  # all certain: accuracy says it
    figures = pair_figures([800.0, -800.0], [-800.0, 800.0], p_chosen=[0.9, 0.9])
    assert math.isfinite(figures["soft_log_loss"])
    assert figures["soft_log_loss"] == pytest.approx((0.1 * 1600 + 0.9 * 1600) / 2, rel=1e-9)


def test_a_reward_run_on_soft_labels_reports_the_soft_held_out_figures(tiny, tmp_path):
    rows = [
        {
            "prompt": f"Question {i}?",
            "chosen": "Yes. Good answer.",
            "rejected": "No. Bad answer.",
            "p_chosen": p,
        }
        for i, p in enumerate([0.9, 0.2, 0.7, 0.6] * 4)
    ]
    data = write_jsonl(tmp_path / "soft.jsonl", rows)
    metrics = reward.run(
        runner_config("reward", tiny, data, tmp_path / "rm", eval_fraction=0.25, max_steps=1)
    )
    for when in ("eval_before_", "eval_"):
        assert 0 <= metrics[f"{when}soft_accuracy"] <= 1
        assert metrics[f"{when}soft_log_loss"] > 0
    # the evaluate command reads the same figures off a soft-labelled file
    figures = evaluate_reward_model(str(tmp_path / "rm"), data)
    assert figures["pairs"] == 16 and 0 <= figures["soft_accuracy"] <= 1 and figures["soft_log_loss"] > 0
    out = io.StringIO()
    call_command("evaluate_reward", "--model", str(tmp_path / "rm"), "--dataset", data, stdout=out)
    assert f"against the soft labels (p_chosen): accuracy {figures['soft_accuracy']:.3f}" in out.getvalue()
