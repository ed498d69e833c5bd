"""model_version of a local checkpoint (what candidates record as the weights that wrote them) must
tell two checkpoints apart whose weights differ, even when their files have the same names and sizes
and config.json is the same: a trained policy and its base model, two training rounds, or a
LoRA-merged model where only some projections changed. A byte-for-byte copy keeps the version."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.zoo import zoo_model  # noqa: F401 - fixture

pytestmark = pytest.mark.slow


def _retrained(src, dst, *, only: str | None = None):
    """``src`` with its weights changed (all of them, or the tensors whose name contains ``only``),
    saved as the trainers save it (same dtype, same file names)."""
    import torch
    from transformers import AutoModelForCausalLM

    shutil.copytree(src, dst)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if only is None or only in name:
                p.add_(0.5)
    model.save_pretrained(dst, safe_serialization=True)
    return dst


@pytest.mark.parametrize("only", [None, "layers.1.self_attn.v_proj"])
def test_different_weights_in_same_sized_files_are_different_versions(zoo_model, tmp_path, only, one_thread):  # noqa: F811
    from generation.backends.transformers import model_version_of

    base = zoo_model("qwen")
    tuned = _retrained(base, tmp_path / "tuned", only=only)
    before = Path(base)
    assert (tuned / "model.safetensors").stat().st_size == (before / "model.safetensors").stat().st_size
    assert (tuned / "config.json").read_bytes() == (before / "config.json").read_bytes()
    assert (tuned / "model.safetensors").read_bytes() != (before / "model.safetensors").read_bytes()
    assert model_version_of(str(tuned)) != model_version_of(base)


def test_a_copy_of_the_same_weights_keeps_its_version(zoo_model, tmp_path):  # noqa: F811
    from generation.backends.transformers import model_version_of

    base = zoo_model("qwen")
    copy = shutil.copytree(base, tmp_path / "copy")
    assert model_version_of(str(copy)) == model_version_of(base)
    assert model_version_of(base).startswith("sha256:")


def test_a_large_weight_file_is_told_apart_by_its_sampled_bytes(tmp_path):
    """A file larger than the sampled bytes: a change to one tensor in its middle still shows."""
    import random

    from generation.backends.transformers import model_version_of

    data = bytearray(random.Random(0).randbytes(4 * 1024 * 1024))
    folders = []
    for name, fill in (("a", None), ("b", 7)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text('{"model_type": "llama"}')
        if fill is not None:
            data[2 * 1024 * 1024 : 3 * 1024 * 1024] = bytes([fill]) * (1024 * 1024)
        (folder / "model.safetensors").write_bytes(bytes(data))
        folders.append(str(folder))
    assert model_version_of(folders[0]) != model_version_of(folders[1])
