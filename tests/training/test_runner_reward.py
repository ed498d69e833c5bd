"""Reward model runner on CPU with tiny models built offline.

The headline test trains on the shared HH-RLHF sample (harmless-base): 1,200 pairs for training,
300 held out. The model is a one-layer Llama (hidden 32) over a 2,048-token BPE tokenizer trained
on the training text; pairs are cut to 64 tokens (the end of the prompt and the start of the reply),
three epochs at lr 3e-3. What it can learn there is mostly surface signal (length, refusal words);
a bag-of-words logistic regression reaches 60-65% on the same split. Measured over four seeds of
this set-up when the reward was read at the newline after the end-of-turn token: 63.3%, 64.7%,
61.3%, 61.3% held-out pair accuracy. Since core.formatting reads it AT the end-of-turn token (as
PPO scoring does), seed 0 (the one tested) measures 59.7% (bootstrap 95% CI 53.7-65.0%); the test
asserts the CI clears chance and the accuracy is at least 58%.

Bad input: empty and single-class data, a tokenizer that does not fit the model, a reward model
given as a DPO policy; each fails with a clear message.
"""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import HH_SAMPLE, require_shared
from tests.training.conftest import runner_config, write_jsonl
from training.runners import reward
from training.runners.configs import config_for
from training.runners.data import load_preferences
from training.runners.protocol import DataError, ModelError, describe_failure

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def _cfg(base: str, data: str, out: Path, **extra):
    values = {"learning_rate": 2e-3, "per_device_train_batch_size": 8, "logging_steps": 5, **extra}
    return runner_config("reward", base, data, out, **values)


def test_reward_model_on_hh_rlhf_beats_chance_held_out(tmp_path):
    from transformers import AutoModelForSequenceClassification

    from annotate.services.imports import parse_hh_transcript
    from generation.tiny_model import build_tiny_model

    sample = require_shared(HH_SAMPLE)
    with gzip.open(sample, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    random.Random(0).shuffle(rows)
    train, held_out = rows[:1200], rows[1200:]
    train_path = write_jsonl(tmp_path / "train.jsonl", train)
    test_path = write_jsonl(tmp_path / "test.jsonl", held_out)
    texts = []
    for r in train:
        chosen, rejected = parse_hh_transcript(r["chosen"]), parse_hh_transcript(r["rejected"])
        texts += [chosen[-2]["content"], chosen[-1]["content"], rejected[-1]["content"]]
    base = build_tiny_model(
        tmp_path / "base",
        texts=texts,
        vocab_size=2048,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
    )

    cfg = _cfg(
        str(base),
        train_path,
        tmp_path / "rm",
        eval_dataset_path=test_path,
        learning_rate=3e-3,
        num_train_epochs=3,
        per_device_train_batch_size=32,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        weight_decay=0.01,
    )
    metrics = reward.run(cfg)
    print(
        "HH-RLHF reward model:", {k: v for k, v in metrics.items() if k.startswith(("eval", "train", "sec"))}
    )
    assert metrics["eval_pairs"] == 300 and metrics["train_pairs"] == 1200
    assert metrics["eval_accuracy"] >= 0.58 and metrics["eval_accuracy_ci_low"] > 0.5
    assert metrics["eval_accuracy"] > metrics["eval_before_accuracy"]
    assert metrics["eval_margin"] > metrics["eval_before_margin"]
    out = Path(metrics["output_dir"])
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert not list(tmp_path.glob("rm.tmp-*"))
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_labels == 1


def test_margin_column_is_used_and_training_moves_the_weights(tiny, tmp_path):
    rows = [
        {
            "prompt": f"Question {i}?",
            "chosen": "Yes. Good answer.",
            "rejected": "No. Bad answer.",
            "margin": 1.0 + i % 2,
        }
        for i in range(24)
    ]
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    metrics = reward.run(_cfg(tiny, data, tmp_path / "rm", num_train_epochs=3, eval_fraction=0.25))
    assert metrics["used_margin"] is True
    assert metrics["eval_accuracy"] == 1.0 and metrics["eval_margin"] > 0.5


def test_parquet_and_conversational_rows_load(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {
            "prompt": [{"role": "user", "content": "Hi?"}],
            "chosen": [{"role": "assistant", "content": "Hello."}],
            "rejected": [{"role": "assistant", "content": "Go away."}],
        }
    ]
    path = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    data = load_preferences(str(path))
    assert data.conversational and data.rows[0]["chosen"][0]["content"] == "Hello."


def test_empty_and_single_class_data_fail_clearly(tiny, tmp_path):
    empty = write_jsonl(tmp_path / "empty.jsonl", [])
    with pytest.raises(DataError, match="empty"):
        reward.run(_cfg(tiny, empty, tmp_path / "a"))
    same = write_jsonl(tmp_path / "same.jsonl", [{"prompt": "Q?", "chosen": "A", "rejected": "A"}] * 5)
    with pytest.raises(DataError, match="single-class"):
        reward.run(_cfg(tiny, same, tmp_path / "b"))
    unpaired = write_jsonl(tmp_path / "kto.jsonl", [{"prompt": "Q?", "completion": "A", "label": True}] * 5)
    with pytest.raises(DataError, match="Single-class"):
        reward.run(_cfg(tiny, unpaired, tmp_path / "c"))
    not_pairs = write_jsonl(tmp_path / "x.jsonl", [{"text": "hello"}])
    with pytest.raises(DataError, match="not a TRL preference file"):
        reward.run(_cfg(tiny, not_pairs, tmp_path / "d"))
    assert not any(p.name.startswith(("a", "b", "c", "d")) for p in tmp_path.iterdir() if p.is_dir())


def test_tokenizer_model_mismatch_fails_clearly(tiny, tmp_path):
    import shutil

    from generation.tiny_model import build_tiny_model

    big = build_tiny_model(tmp_path / "big", vocab_size=1024)
    mixed = tmp_path / "mixed"
    shutil.copytree(tiny, mixed)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(big / name, mixed / name)
    data = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "Q?", "chosen": "Yes", "rejected": "No"}] * 4)
    with pytest.raises(ModelError, match="Tokenizer/model mismatch"):
        reward.run(_cfg(str(mixed), data, tmp_path / "rm"))


def test_a_reward_model_is_not_a_dpo_policy(tiny, tmp_path):
    from training.runners import dpo

    data = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "Q?", "chosen": "Yes", "rejected": "No"}] * 8)
    rm = reward.run(_cfg(tiny, data, tmp_path / "rm", max_steps=1, eval_fraction=0))
    with pytest.raises(ModelError, match="not a causal language model"):
        dpo.run(
            config_for(
                "dpo",
                {"base_model": rm["output_dir"], "dataset_path": data, "output_dir": str(tmp_path / "p")},
            )
        )


def test_out_of_memory_is_explained():
    class OutOfMemoryError(RuntimeError):
        pass

    kind, message = describe_failure(OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert kind == "oom" and "per_device_train_batch_size" in message and "Tried to allocate" in message


def _run_reward_module(config: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m training.runners reward --config CONFIG`` from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "training.runners", "reward", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
        env=env,
    )


def test_module_entry_point_prints_an_error_line_and_exits_1(tiny, tmp_path):
    empty = write_jsonl(tmp_path / "empty.jsonl", [])
    config = tmp_path / "cfg.json"
    config.write_text(
        json.dumps({"base_model": tiny, "dataset_path": empty, "output_dir": str(tmp_path / "o")})
    )
    proc = _run_reward_module(config, env={"OMP_WAIT_POLICY": "PASSIVE", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1, proc.stderr[-2000:]
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    assert last["event"] == "error" and last["kind"] == "data" and "empty" in last["message"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"base_model": tiny, "output_dir": "x", "learning_rat": 1}))
    proc = _run_reward_module(bad)
    assert proc.returncode == 2 and "Unknown reward option" in proc.stdout


@pytest.mark.django_db
def test_train_command_prints_a_final_json_line(tiny, tmp_path, capsys):
    from django.core.management import CommandError, call_command

    data = write_jsonl(
        tmp_path / "pairs.jsonl", [{"prompt": f"Q{i}?", "chosen": "Yes", "rejected": "No"} for i in range(8)]
    )
    out = tmp_path / "rm"
    call_command(
        "train", "reward", "--dataset", data, "--base-model", tiny, "--out", str(out),
        "--config", '{"max_steps": 2, "use_cpu": true, "learning_rate": 0.001}',
    )  # fmt: skip
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["event"] == "final" and last["output_dir"] == str(out) and "eval_accuracy" in last
    with pytest.raises(CommandError, match="reward_model is required"):
        call_command("train", "ppo", "--dataset", data, "--base-model", tiny, "--out", str(tmp_path / "p"))
    with pytest.raises(CommandError, match="already exists"):
        call_command("train", "reward", "--dataset", data, "--base-model", tiny, "--out", str(out))
