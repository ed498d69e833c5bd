"""Probe: ``bf16: true`` with ``use_cpu: false`` on a machine without a bf16 accelerator. Before,
``train`` loaded the data, the tokenizer and the model and evaluated the held-out pairs before
transformers refused it ("ValueError: Your setup doesn't support bf16/gpu ..."). Now the runner
refuses it first (the web process cannot: the worker's hardware decides), naming both options."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


def test_bf16_without_an_accelerator_is_refused_before_reading_anything(tmp_path, tiny, monkeypatch):
    def nothing(*args, **kwargs):
        raise AssertionError("data was read")

    monkeypatch.setattr("transformers.utils.is_torch_bf16_gpu_available", lambda: False)
    monkeypatch.setattr("training.runners.data.load_pair_splits", nothing)
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n")
    with pytest.raises(
        CommandError, match=r"^Bad config: bf16 is true and use_cpu is false, but this machine"
    ):
        call_command(
            "train", "reward", "--dataset", str(path), "--base-model", tiny, "--out", str(tmp_path / "out"),
            "--config", json.dumps({"bf16": True, "use_cpu": False}),
        )  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_bf16_on_the_cpu_or_with_an_accelerator_passes_the_check(monkeypatch):
    from training.runners.__main__ import check_precision
    from training.runners.configs import config_for

    base = {"base_model": "m", "output_dir": "o"}
    monkeypatch.setattr("transformers.utils.is_torch_bf16_gpu_available", lambda: False)
    check_precision(config_for("reward", {**base, "bf16": True, "use_cpu": True}))  # CPU autocast
    check_precision(config_for("reward", {**base, "bf16": None, "use_cpu": False}))
    monkeypatch.setattr("transformers.utils.is_torch_bf16_gpu_available", lambda: True)
    check_precision(config_for("reward", {**base, "bf16": True, "use_cpu": False}))
