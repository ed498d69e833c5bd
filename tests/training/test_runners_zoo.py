"""Every runner this module covers (reward, DPO, RLOO/GRPO) on every zoo checkpoint (bf16-saved
Llama-3-, Qwen-, Gemma-like and a template-less base model) and on the real MiniLM encoder.

Must-show tests: one optimiser step at the runner's DEFAULT learning rate changes every trainable
tensor of a bf16-saved model (fp32 master weights), and tie rows are never trained.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generation.zoo import ZOO
from training.runners.common import DataError, load_preferences
from training.runners.configs import config_for

pytestmark = pytest.mark.slow

ZOO_NAMES = list(ZOO)

PAIRS = [
    ("Is the sky blue?", "Yes, on a clear day it is blue.", "No."),
    ("What is 2+2?", "2+2 is 4.", "Fish."),
    ("Name a colour.", "Red is a colour.", "I will not."),
    ("Say hello.", "Hello! How can I help?", "Go away."),
    ("Is water wet?", "Water makes things wet.", "Maybe."),
    ("Count to three.", "One, two, three.", "Ten."),
]


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _pairs(path: Path, *, conversational: bool, ties: int = 0) -> str:
    rows = []
    for prompt, good, bad in PAIRS:
        if conversational:
            rows.append(
                {
                    "prompt": [{"role": "user", "content": prompt}],
                    "chosen": [{"role": "assistant", "content": good}],
                    "rejected": [{"role": "assistant", "content": bad}],
                    "flag": None,
                }
            )
        else:
            rows.append({"prompt": prompt, "chosen": good, "rejected": bad, "flag": None})
    for i in range(ties):
        rows.append({"prompt": f"Tie {i}?", "chosen": "Same-ish A.", "rejected": "Same-ish B.", "flag": "tie"})
    return _write(path, rows)


def _tensors(path: str) -> dict:
    from safetensors.torch import load_file

    out = {}
    for f in sorted(Path(path).glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def _assert_every_tensor_changed(base: str, trained: str) -> None:
    import torch

    before, after = _tensors(base), _tensors(trained)
    common = [k for k in before if k in after and before[k].shape == after[k].shape]
    assert len(common) >= 10, sorted(after)[:5]
    unchanged = [k for k in common if torch.equal(before[k].float(), after[k].float())]
    assert not unchanged, f"{len(unchanged)}/{len(common)} tensors unchanged after one step: {unchanged[:4]}"
    assert all(after[k].dtype == torch.float32 for k in common), "trained weights are saved as fp32 masters"


def _base_cfg(kind: str, base: str, data: str, out: Path, **extra):
    values = {
        "base_model": base,
        "dataset_path": data,
        "output_dir": str(out),
        "use_cpu": True,
        "per_device_train_batch_size": 2,
        "max_length": 64,
        "logging_steps": 1,
        "eval_fraction": 0,
    }
    values.update(extra)
    return config_for(kind, values)


# --- bf16 master weights (defect 1) ---------------------------------------------------------------


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_reward_one_default_lr_step_changes_every_tensor_of_a_bf16_checkpoint(zoo_model, tmp_path, name):
    from training.runners import reward

    base = zoo_model(name)
    data = _pairs(tmp_path / "pairs.jsonl", conversational=ZOO[name].chat)
    cfg = _base_cfg("reward", base, data, tmp_path / "rm", max_steps=1)
    assert cfg.learning_rate == config_for("reward", {"base_model": "x", "output_dir": "y"}).learning_rate
    reward.run(cfg)
    _assert_every_tensor_changed(base, str(tmp_path / "rm"))


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_dpo_one_default_lr_step_changes_every_tensor_of_a_bf16_checkpoint(zoo_model, tmp_path, name):
    from training.runners import dpo

    base = zoo_model(name)
    data = _pairs(tmp_path / "pairs.jsonl", conversational=ZOO[name].chat)
    cfg = _base_cfg("dpo", base, data, tmp_path / "dpo", max_steps=1)
    dpo.run(cfg)
    _assert_every_tensor_changed(base, str(tmp_path / "dpo"))


# --- ties (defect 2) ------------------------------------------------------------------------------


def test_tie_rows_are_dropped_with_a_count(tmp_path, capsys):
    data = load_preferences(_pairs(tmp_path / "p.jsonl", conversational=False, ties=3))
    assert len(data.rows) == len(PAIRS) and data.dropped_ties == 3
    assert all(not r["prompt"].startswith("Tie") for r in data.rows)
    assert "Dropped 3 tie/both-bad row(s)" in capsys.readouterr().err


def test_a_file_of_only_ties_is_refused(tmp_path):
    rows = [{"prompt": "Q?", "chosen": "A", "rejected": "B", "flag": "both_bad"}] * 3
    with pytest.raises(DataError, match="3 tie/both-bad rows"):
        load_preferences(_write(tmp_path / "ties.jsonl", rows))


@pytest.mark.parametrize("kind", ["reward", "dpo"])
def test_runners_never_train_ties(zoo_model, tmp_path, kind):
    from training.runners import dpo, reward

    data = _pairs(tmp_path / "pairs.jsonl", conversational=True, ties=4)
    cfg = _base_cfg(kind, zoo_model("qwen"), data, tmp_path / kind, max_steps=1, learning_rate=1e-3)
    final = (reward if kind == "reward" else dpo).run(cfg)
    assert final["train_pairs"] == len(PAIRS) and final["dropped_tie_pairs"] == 4
