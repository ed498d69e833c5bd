"""Soft-label DPO with two processes (DDP on gloo, as ``accelerate launch`` runs it on CPU): the
per-pair targets reach the loss through the wrapped model (the trainer's forward hooks sit on the
unwrapped one, which DDP calls), on a bf16-saved Qwen-like checkpoint, with the reference run
alongside. Pairs whose soft label prefers the 'rejected' reply (p_chosen 0) end with a negative
held-out margin: trained towards the soft label."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.training.test_multiprocess import _check_saved, _final, _launch, _pair_run, models  # noqa: F401

pytestmark = pytest.mark.slow


def test_soft_label_dpo_two_processes(models, tmp_path):  # noqa: F811
    _root, base, _ = models
    data = tmp_path / "soft.jsonl"
    rows = [
        {"prompt": f"Question {i}?", "chosen": "Yes. Good answer.", "rejected": "No. Bad.", "p_chosen": 0.0}
        for i in range(5)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "dpo"
    cfg = {**_pair_run(base, data, out), "eval_dataset_path": str(data), "max_steps": 3, "beta": 0.5}
    final = _final(_launch("dpo", cfg, tmp_path))
    assert final["used_soft_labels"] is True
    assert final["eval_before_margin"] == pytest.approx(0.0, abs=1e-6)
    assert final["eval_margin"] < 0 and final["eval_soft_accuracy"] > final["eval_before_soft_accuracy"]
    _check_saved(Path(out), base)
