"""Two-process CPU runs (``accelerate launch --num_processes 2``, gloo) of PPO and DPO.

The prompt/pair counts do not divide by 2: before the fix each PPO rank computed its own iteration
count from its own share of the prompts, so one rank waited forever in an all-reduce the other
never joined. Each run starts from a bf16-saved zoo checkpoint and must finish and leave exactly
one loadable model of the documented dtype (float32, the masters that were trained).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def models(tmp_path_factory, zoo_model):
    """A bf16-saved zoo checkpoint (Qwen-like) and a reward model built from it once (so every rank
    loads the same reward head)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    root = tmp_path_factory.mktemp("mp")
    base = zoo_model("qwen")
    tok = AutoTokenizer.from_pretrained(base)
    rm = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    rm.config.pad_token_id = tok.pad_token_id
    rm.save_pretrained(root / "rm")
    tok.save_pretrained(root / "rm")
    return root, str(base), str(root / "rm")


def _launch(kind: str, cfg: dict, tmp_path: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    from training.runners.launch import command

    cfg_file = tmp_path / f"{kind}.json"
    cfg_file.write_text(json.dumps(cfg))
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        CUDA_VISIBLE_DEVICES="",
        ACCELERATE_USE_CPU="true",
        PYTHONPATH=str(ROOT),
        MASTER_PORT=str(29500 + (os.getpid() % 1000)),
    )
    cmd = command(kind, str(cfg_file), python=sys.executable, num_processes=2)
    cmd.insert(cmd.index("--num_processes"), "--main_process_port")
    cmd.insert(cmd.index("--num_processes"), env["MASTER_PORT"])
    popen = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = popen.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:  # the deadlock this file guards against: end the whole group
        os.killpg(popen.pid, signal.SIGKILL)
        stdout, stderr = popen.communicate()
        pytest.fail(f"{kind} with 2 processes did not finish in {timeout}s (deadlock?)\n{stderr[-3000:]}")
    proc = subprocess.CompletedProcess(cmd, popen.returncode, stdout, stderr)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc


def _final(proc) -> dict:
    finals = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith('{"event": "final"')]
    assert len(finals) == 1, proc.stdout[-2000:]  # only the main process reports
    return finals[0]


def _check_saved(out: Path, base: str):
    import torch
    from transformers import AutoModelForCausalLM

    assert not list(out.parent.glob(out.name + ".tmp-*")), "a half-written output was left"
    model = AutoModelForCausalLM.from_pretrained(out)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    ref = AutoModelForCausalLM.from_pretrained(base)
    changed = [
        n
        for (n, p), (_, q) in zip(model.named_parameters(), ref.named_parameters(), strict=True)
        if not torch.equal(p.float(), q.float())
    ]
    assert changed, "the saved model is the untouched base model"


def test_ppo_two_processes_uneven_prompts(models, tmp_path):
    _root, base, rm = models
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Question {i}?"}) + "\n" for i in range(5)))
    out = tmp_path / "ppo"
    proc = _launch(
        "ppo",
        {
            "base_model": base,
            "reward_model": rm,
            "dataset_path": str(data),
            "output_dir": str(out),
            "use_cpu": True,
            "eval_fraction": 0.0,
            "learning_rate": 1e-3,
            "rollout_batch_size": 2,
            "per_device_train_batch_size": 2,
            "ppo_epochs": 1,
            "max_new_tokens": 4,
            "max_length": 32,
            "logging_steps": 1,
        },
        tmp_path,
    )
    final = _final(proc)
    # 5 prompts, 2 per rank per iteration: ceil(5 / 4) = 2 iterations on both ranks
    assert final["iterations"] == 2
    _check_saved(out, base)


def test_dpo_two_processes_uneven_pairs(models, tmp_path):
    _root, base, _ = models
    out = tmp_path / "dpo"
    _launch(
        "dpo",
        _pair_run(base, _pairs(tmp_path, 5), out),
        tmp_path,
    )
    _check_saved(out, base)


def test_dpo_two_processes_precomputed_reference_and_held_out_pairs(models, tmp_path):
    """precompute_ref_log_probs with two processes: TRL's rank 0 writes the reference log-probs next
    to the dataset's cache file and every rank reads them back from there. Before, the runner handed
    TRL in-memory datasets, whose cache path is a per-process temporary folder, so rank 1 failed with
    FileNotFoundError: '/tmp/hf_datasets-.../cache-....arrow'."""
    _root, base, _ = models
    out = tmp_path / "dpo"
    pairs = _pairs(tmp_path, 5)
    cfg = {**_pair_run(base, pairs, out), "precompute_ref_log_probs": True, "eval_dataset_path": str(pairs)}
    final = _final(_launch("dpo", cfg, tmp_path))
    assert final["train_pairs"] == 5 and final["eval_pairs"] == 5
    assert final["eval_before_accuracy"] == 0.5 and "eval_loss" in final
    _check_saved(out, base)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [], (
        "the shared datasets were left in the model"
    )


def _pair_run(base: str, data: Path, out: Path) -> dict:
    """Two steps of a pairwise run (DPO, reward) on 5 pairs: uneven over two ranks."""
    return {
        "base_model": base,
        "dataset_path": str(data),
        "output_dir": str(out),
        "use_cpu": True,
        "eval_fraction": 0.0,
        "learning_rate": 1e-3,
        "per_device_train_batch_size": 2,
        "max_steps": 2,
        "max_length": 32,
        "logging_steps": 1,
    }


def _pairs(tmp_path: Path, n: int) -> Path:
    data = tmp_path / "pairs.jsonl"
    data.write_text(
        "".join(
            json.dumps({"prompt": f"Question {i}?", "chosen": "Yes. Good answer.", "rejected": "No. Bad."})
            + "\n"
            for i in range(n)
        )
    )
    return data


def test_reward_two_processes_uneven_pairs(models, tmp_path):
    """A reward model on two ranks: one final report, one record, a complete sequence-classification
    model whose score head trained."""
    import torch
    from transformers import AutoModelForSequenceClassification

    _root, base, rm = models
    out = tmp_path / "reward"
    proc = _launch(
        "reward",
        _pair_run(base, _pairs(tmp_path, 5), out),
        tmp_path,
    )
    assert _final(proc)["train_pairs"] == 5
    assert json.loads((out / "prefhub_run.json").read_text())["kind"] == "reward"
    assert not list(tmp_path.glob("reward.tmp-*")), "a half-written output was left"
    trained = AutoModelForSequenceClassification.from_pretrained(out)
    start = AutoModelForSequenceClassification.from_pretrained(rm)  # the same base with its first head
    assert {p.dtype for p in trained.parameters()} == {torch.float32}
    assert not torch.equal(trained.model.embed_tokens.weight, start.model.embed_tokens.weight.float())


def test_grpo_two_processes(models, tmp_path):
    """GRPO on two ranks (TRL's trainer: generation and the reward model on every rank)."""
    _root, base, rm = models
    out = tmp_path / "grpo"
    proc = _launch(
        "grpo",
        {
            "base_model": base,
            "reward_model": rm,
            "dataset_path": str(_pairs(tmp_path, 6)),
            "output_dir": str(out),
            "use_cpu": True,
            "eval_fraction": 0.0,
            "learning_rate": 1e-3,
            "num_generations": 4,
            "per_device_train_batch_size": 4,
            "max_completion_length": 4,
            "max_steps": 2,
            "logging_steps": 1,
        },
        tmp_path,
    )
    _final(proc)
    assert json.loads((out / "prefhub_run.json").read_text())["kind"] == "grpo"
    _check_saved(out, base)
