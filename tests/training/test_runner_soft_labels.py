"""Soft labels (``p_chosen``, an export's ``soft_labels`` option) in the runners.

Before, every runner ignored ``p_chosen`` silently: a reward model trained on -log sigmoid(r_c - r_r) as if
every row were certain. Now the reward runner trains on the soft Bradley-Terry target
-(p log sigmoid(r_c - r_r - m) + (1 - p) log sigmoid(r_r - r_c - m)) (rows without ``p_chosen`` count as p = 1, so
data without it trains exactly as before), a bad ``p_chosen`` is refused naming its line, and the DPO
runner, whose loss (TRL's) takes no per-row label, says in its log that it ignores them."""

from __future__ import annotations

import json
import math

import pytest

from tests.training.conftest import runner_config, write_jsonl
from training.runners import dpo, reward
from training.runners.data import load_preferences
from training.runners.protocol import DataError


def _rows(n: int, p: float | None = None) -> list[dict]:
    rows = [
        {"prompt": f"Question {i}?", "chosen": "Yes. Good answer.", "rejected": "No. Bad answer."}
        for i in range(n)
    ]
    if p is not None:
        for r in rows:
            r["p_chosen"] = p
    return rows


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_soft_loss_matches_a_hand_computed_figure():
    import torch

    chosen, rejected = torch.tensor([1.0, 0.0]), torch.tensor([0.5, 2.0])
    p = torch.tensor([0.8, 0.3])
    # row 1: d = 0.5, p = 0.8; row 2: d = -2, p = 0.3
    expected = (
        -(
            (0.8 * math.log(_sigmoid(0.5)) + 0.2 * math.log(_sigmoid(-0.5)))
            + (0.3 * math.log(_sigmoid(-2.0)) + 0.7 * math.log(_sigmoid(2.0)))
        )
        / 2
    )
    assert reward.soft_preference_loss(chosen, rejected, p).item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.6505, abs=1e-4)  # (0.5741 + 0.7269) / 2, by hand
    # with a margin m, each direction must win by m: -(p log sigmoid(d - m) + (1 - p) log sigmoid(-d - m))
    margin = torch.tensor([1.0, 0.0])
    with_margin = (
        -(
            (0.8 * math.log(_sigmoid(-0.5)) + 0.2 * math.log(_sigmoid(-1.5)))
            + (0.3 * math.log(_sigmoid(-2.0)) + 0.7 * math.log(_sigmoid(2.0)))
        )
        / 2
    )
    got = reward.soft_preference_loss(chosen, rejected, p, margin).item()
    assert got == pytest.approx(with_margin, rel=1e-6)


def test_p_one_everywhere_is_exactly_the_hard_loss():
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    chosen, rejected, margin = torch.randn(16) * 3, torch.randn(16) * 3, torch.rand(16)
    ones = torch.ones(16)
    assert torch.equal(
        reward.soft_preference_loss(chosen, rejected, ones), -F.logsigmoid(chosen - rejected).mean()
    )
    assert torch.equal(
        reward.soft_preference_loss(chosen, rejected, ones, margin),
        -F.logsigmoid(chosen - rejected - margin).mean(),
    )


def test_rows_without_p_chosen_count_as_one_and_files_without_any_have_none(tmp_path):
    rows = _rows(3)
    rows[1]["p_chosen"] = 0.25
    rows[2]["p_chosen"] = None
    data = load_preferences(write_jsonl(tmp_path / "mixed.jsonl", rows))
    assert data.has_soft_labels is True
    assert [r["p_chosen"] for r in data.rows] == [1.0, 0.25, 1.0]
    plain = load_preferences(write_jsonl(tmp_path / "plain.jsonl", _rows(3)))
    assert plain.has_soft_labels is False and all("p_chosen" not in r for r in plain.rows)


@pytest.mark.parametrize("bad", [1.5, -0.1, "0.7", True, float("nan")])
def test_bad_p_chosen_is_refused_naming_the_line(tmp_path, bad):
    rows = _rows(3)
    rows[1]["p_chosen"] = bad
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=r"bad\.jsonl line 2: p_chosen must be a number from 0 to 1"):
        load_preferences(str(path))


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_reward_run_trains_on_soft_labels_and_says_so(tiny, tmp_path, capsys, monkeypatch):
    seen: list = []
    real = reward.soft_preference_loss

    def spy(chosen, rejected, p, margin=None):
        seen.append(p.tolist())
        return real(chosen, rejected, p, margin)

    monkeypatch.setattr(reward, "soft_preference_loss", spy)
    data = write_jsonl(tmp_path / "soft.jsonl", _rows(4, p=0.75))
    cfg = runner_config(
        "reward", tiny, data, tmp_path / "rm", eval_fraction=0, max_steps=2, learning_rate=1e-3
    )
    metrics = reward.run(cfg)
    assert metrics["used_soft_labels"] is True
    assert seen and all(p == [0.75, 0.75] for p in seen)
    assert "Soft labels: training on p_chosen (4 of 4 training pairs below 1" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_reward_run_without_p_chosen_uses_the_hard_loss(tiny, tmp_path, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the soft loss ran on data without p_chosen")

    monkeypatch.setattr(reward, "soft_preference_loss", refuse)
    data = write_jsonl(tmp_path / "hard.jsonl", _rows(4))
    metrics = reward.run(runner_config("reward", tiny, data, tmp_path / "rm", eval_fraction=0, max_steps=1))
    assert metrics["used_soft_labels"] is False
    assert "Soft labels" not in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_dpo_run_trains_on_p_chosen_and_says_how(tiny, tmp_path, capsys):
    """DPO's sigmoid loss trains on the soft labels (tests/training/test_dpo_soft_targets.py checks
    the loss); a loss with no per-pair target says it leaves them unused."""
    data = write_jsonl(tmp_path / "soft.jsonl", _rows(4, p=0.75))
    metrics = dpo.run(runner_config("dpo", tiny, data, tmp_path / "dpo", eval_fraction=0, max_steps=1))
    assert metrics["used_soft_labels"] is True
    assert "q = (1 - label_smoothing) p + label_smoothing (1 - p)" in capsys.readouterr().err
    ipo = dpo.run(
        runner_config("dpo", tiny, data, tmp_path / "ipo", eval_fraction=0, max_steps=1, loss_type="ipo")
    )
    assert ipo["used_soft_labels"] is False
    assert "p_chosen (soft labels) of 4 pairs is not used: loss_type 'ipo'" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_reward_run_with_soft_labels_and_margins_names_both(tiny, tmp_path, capsys):
    rows = [{**r, "margin": 0.5} for r in _rows(4, p=0.9)]
    data = write_jsonl(tmp_path / "soft.jsonl", rows)
    metrics = reward.run(runner_config("reward", tiny, data, tmp_path / "rm", eval_fraction=0, max_steps=1))
    assert metrics["used_soft_labels"] is True and metrics["used_margin"] is True
    assert "(1 - p) log sigmoid(-d - m)), m the pair's margin" in capsys.readouterr().err
