"""Soft labels and a held-out file of ties on two processes (accelerate, gloo, CPU), bf16: one final
report that says it trained on p_chosen and skipped evaluation, and a trained model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.training.test_multiprocess import _final, _launch, _pair_run, models  # noqa: F401

pytestmark = pytest.mark.slow


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_reward_two_processes_soft_labels_bf16_ties_held_out(models, tmp_path):  # noqa: F811
    _root, base, _rm = models
    data = _write(
        tmp_path / "soft.jsonl",
        [
            {"prompt": f"Question {i}?", "chosen": "Yes. Good answer.", "rejected": "No. Bad.", "p_chosen": p}
            for i, p in enumerate([0.0, 1.0, 0.7, 0.35, 0.999])
        ],
    )
    ties = _write(
        tmp_path / "ties.jsonl",
        [
            {"prompt": f"T {i}?", "chosen": "A.", "rejected": "B.", "flag": "tie", "p_chosen": 0.5}
            for i in range(3)
        ],
    )
    cfg = {**_pair_run(base, data, tmp_path / "rm"), "bf16": True, "eval_dataset_path": str(ties)}
    proc = _launch("reward", cfg, tmp_path)
    final = _final(proc)
    assert final["used_soft_labels"] is True and final["train_pairs"] == 5
    assert final["eval_skipped"] == "held-out split: 0 usable pairs of 3 rows (3 ties); evaluation skipped"
    assert not [k for k in final if k.startswith("eval_") and k != "eval_skipped"]
    assert proc.stderr.count("Soft labels: training on p_chosen (4 of 5 training pairs below 1") >= 1
