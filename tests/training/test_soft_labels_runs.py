"""Soft labels (``p_chosen``) through the reward runner as users run it: bf16 on CPU, LoRA,
conversational rows, p_chosen of exactly 0 and 1."""

from __future__ import annotations

import math

import pytest

from tests.training.conftest import conv_row, runner_config, write_jsonl
from training.runners import reward

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def _rows(ps: list[float]) -> list[dict]:
    return [
        {
            "prompt": f"Question {i}?",
            "chosen": "Yes. Good answer.",
            "rejected": "No. Bad answer.",
            "p_chosen": p,
        }
        for i, p in enumerate(ps)
    ]


def _spy(monkeypatch) -> list:
    seen: list = []
    real = reward.soft_preference_loss

    def spy(chosen, rejected, p, margin=None):
        loss = real(chosen, rejected, p, margin)
        seen.append({"p": p.tolist(), "p_dtype": str(p.dtype), "loss_dtype": str(loss.dtype)})
        return loss

    monkeypatch.setattr(reward, "soft_preference_loss", spy)
    return seen


def test_bf16_keeps_each_p_chosen_as_exported(tiny, tmp_path, monkeypatch):
    """p_chosen reaches the loss unrounded under bf16 (a bf16 p would read 0.999 as 1.0)."""
    seen = _spy(monkeypatch)
    ps = [0.999, 0.7, 0.999, 0.7]
    data = write_jsonl(tmp_path / "soft.jsonl", _rows(ps))
    cfg = runner_config("reward", tiny, data, tmp_path / "rm", eval_fraction=0, max_steps=2, bf16=True)
    metrics = reward.run(cfg)
    assert metrics["used_soft_labels"] is True
    assert seen
    for s in seen:
        assert s["p_dtype"] == "torch.float32", s
        assert s["loss_dtype"] == "torch.float32", s
        assert all(
            math.isclose(p, q, rel_tol=1e-6) for p, q in zip(sorted(s["p"]), [0.7, 0.999], strict=True)
        ), s


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_p_zero_and_one_exactly_conversational(tiny, tmp_path, monkeypatch, lora):
    seen = _spy(monkeypatch)
    rows = [
        {
            **conv_row([{"role": "user", "content": f"Q {i}?"}], "Yes. Good answer.", "No. Bad answer."),
            "p_chosen": p,
        }
        for i, p in enumerate([0, 1, 0.0, 1.0])
    ]
    data = write_jsonl(tmp_path / "soft.jsonl", rows)
    cfg = runner_config("reward", tiny, data, tmp_path / "rm", eval_fraction=0, max_steps=2, use_lora=lora)
    metrics = reward.run(cfg)
    assert metrics["used_soft_labels"] is True and math.isfinite(metrics["train_loss"])
    assert [sorted(s["p"]) for s in seen] == [[0.0, 1.0], [0.0, 1.0]]
