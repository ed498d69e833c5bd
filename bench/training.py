"""Step time and peak memory of the training runners: reward model, DPO (with and without
precomputed reference log-probs), PPO.

Usage:
    .venv/bin/python bench/training.py [--sizes tiny small] [--steps 12] [--kinds reward dpo dpo_pre ppo]
    .venv/bin/python bench/training.py --sizes gpu-0.5b        # on a CUDA machine

Models are random-init Llamas built offline (``generation.tiny_model``), the tokenizer trained on
the data's text, so nothing is downloaded:

    tiny      hidden 64, 2 layers            (~0.1M params + embeddings), max_length 128, batch 8
    small     hidden 256, 4 layers, 4k vocab (~4M params),                max_length 256, batch 8
    gpu-0.5b  hidden 896, 24 layers, 14 heads / 2 KV heads, MLP 4864 (the Qwen2.5-0.5B shape, with
              a 8k vocabulary: ~0.37B params), max_length 512, batch 8, bf16 -- CUDA only

Data: the shared HH-RLHF sample when it is beside the checkout (pairs for reward/DPO, their prompts
for PPO), else synthetic pairs. Each configuration runs in a fresh subprocess, so peak memory is
its own: CPU peak resident set size (which includes the ~0.5-1 GB of imported libraries: the
``idle`` line gives that baseline), or ``torch.cuda.max_memory_allocated`` on a GPU. Step time is
the mean wall time per optimiser step between the first and last logged steps (PPO: per iteration
of rollout + scoring + ``ppo_epochs`` passes), so start-up and evaluation are excluded; ``run s``
is the runner's whole wall time (data, model loading, DPO's reference pre-pass, evaluation, saving).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
HH = ROOT.parent / "shared" / "data" / "hh-rlhf" / "harmless-base-sample.jsonl.gz"

SIZES = {
    "tiny": {
        "model": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2},
        "vocab": 1024,
        "max_length": 128,
    },
    "small": {
        "model": {
            "hidden_size": 256,
            "intermediate_size": 688,
            "num_hidden_layers": 4,
            "num_attention_heads": 8,
            "num_key_value_heads": 4,
        },
        "vocab": 4096,
        "max_length": 256,
    },
    "gpu-0.5b": {
        "model": {
            "hidden_size": 896,
            "intermediate_size": 4864,
            "num_hidden_layers": 24,
            "num_attention_heads": 14,
            "num_key_value_heads": 2,
        },
        "vocab": 8192,
        "max_length": 512,
        "gpu": True,
    },
}
KINDS = ("reward", "dpo", "dpo_pre", "ppo")


def _rows(n: int) -> list[dict]:
    if HH.exists():
        with gzip.open(HH, "rt", encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh][:n]
        return rows
    rng = random.Random(0)
    words = [
        "the",
        "a",
        "good",
        "bad",
        "answer",
        "question",
        "help",
        "sorry",
        "cannot",
        "yes",
        "no",
        "maybe",
        "please",
        "thanks",
        "because",
    ]
    return [
        {
            "prompt": f"Question {i}: {' '.join(rng.choices(words, k=12))}?",
            "chosen": " ".join(rng.choices(words, k=rng.randint(5, 40))),
            "rejected": " ".join(rng.choices(words, k=rng.randint(5, 40))),
        }
        for i in range(n)
    ]


def _texts(rows: list[dict]) -> list[str]:
    out = []
    for r in rows:
        out += [str(r.get("prompt", "")), str(r["chosen"]), str(r["rejected"])]
    return out


class _Clock:
    """An emitter stream that timestamps metric lines with a loss (one per logged step)."""

    def __init__(self) -> None:
        self.marks: list[tuple[int, float]] = []

    def write(self, text: str) -> None:
        for line in text.splitlines():
            if line.startswith('{"event": "metrics"'):
                event = json.loads(line)
                if "loss" in event:
                    self.marks.append((event["step"], time.perf_counter()))

    def flush(self) -> None:
        pass


def run_one(kind: str, size: str, steps: int, workdir: str) -> dict:
    """One configuration in this process: returns step time and peak memory."""
    import torch

    from generation.tiny_model import build_tiny_model
    from training.runners import dpo, ppo, reward
    from training.runners.configs import config_for
    from training.runners.protocol import Emitter

    spec = SIZES[size]
    gpu = bool(spec.get("gpu"))
    work = Path(workdir)
    data = work / "pairs.jsonl"
    base = work / f"base-{size}"
    if not base.exists():
        build_tiny_model(base, texts=_texts(_rows(400)), vocab_size=spec["vocab"], **spec["model"])
    common = {
        "base_model": str(base),
        "dataset_path": str(data),
        "use_cpu": not gpu,
        "bf16": gpu,
        "max_length": spec["max_length"],
        "per_device_train_batch_size": 8,
        "learning_rate": 1e-4,
        "logging_steps": 1,
        "eval_fraction": 0,
        "max_steps": steps,
    }
    clock = _Clock()
    emitter = Emitter(stream=clock)
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    if kind == "reward":
        final = reward.run(
            config_for("reward", {**common, "output_dir": str(work / f"out-{size}-reward")}), emitter
        )
    elif kind in ("dpo", "dpo_pre"):
        cfg = {
            **common,
            "output_dir": str(work / f"out-{size}-{kind}"),
            "precompute_ref_log_probs": kind == "dpo_pre",
        }
        final = dpo.run(config_for("dpo", cfg), emitter)
    else:
        rm = work / f"rm-{size}"
        if not rm.exists():
            reward.run(config_for("reward", {**common, "max_steps": 1, "output_dir": str(rm)}))
        cfg = {
            **common,
            "reward_model": str(rm),
            "output_dir": str(work / f"out-{size}-ppo"),
            "rollout_batch_size": 8,
            "mini_batch_size": 4,
            "ppo_epochs": 2,
            "max_new_tokens": 32,
            "eval_prompts": 0,
        }
        final = ppo.run(config_for("ppo", cfg), emitter)
    marks = clock.marks
    if len(marks) >= 2:
        (s0, t0), (s1, t1) = marks[0], marks[-1]
        step_s = (t1 - t0) / max(s1 - s0, 1)
    else:
        step_s = float("nan")
    if gpu:
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "kind": kind,
        "size": size,
        "step_s": step_s,
        "run_s": final["seconds"],
        "peak_mb": peak_mb,
        "device": "cuda" if gpu else "cpu",
    }


def idle_rss() -> float:
    import datasets  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
    import trl  # noqa: F401

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"], choices=list(SIZES))
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument(
        "--one", nargs=4, metavar=("KIND", "SIZE", "STEPS", "WORKDIR"), help=argparse.SUPPRESS
    )
    parser.add_argument("--idle", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.idle:
        print(json.dumps({"idle_mb": idle_rss()}))
        return
    if args.one:
        kind, size, steps, workdir = args.one
        print("BENCH " + json.dumps(run_one(kind, size, int(steps), workdir)), flush=True)
        return

    import torch

    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryDirectory(prefix="bench-training-") as workdir:
        rows = _rows(400)
        with open(Path(workdir) / "pairs.jsonl", "w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r) + "\n")
        idle = json.loads(subprocess.check_output([sys.executable, __file__, "--idle"], env=env, text=True))
        print(
            f"data: {'HH-RLHF sample' if HH.exists() else 'synthetic'} ({len(rows)} pairs); torch threads "
            f"{torch.get_num_threads()}; CUDA {'yes' if torch.cuda.is_available() else 'no'}"
        )
        print(f"idle: {idle['idle_mb']:.0f} MB resident after importing torch/transformers/trl/datasets")
        print(f"{'size':<9} {'kind':<8} {'device':<6} {'step s':>8} {'run s':>7} {'peak MB':>9}")
        for size in args.sizes:
            if SIZES[size].get("gpu") and not torch.cuda.is_available():
                print(f"{size:<9} skipped: no CUDA device here")
                continue
            for kind in args.kinds:
                proc = subprocess.run(
                    [sys.executable, __file__, "--one", kind, size, str(args.steps), workdir],
                    env=env,
                    capture_output=True,
                    text=True,
                )
                line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH ")), None)
                if proc.returncode != 0 or line is None:
                    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                    print(f"{size:<9} {kind:<8} failed: {' | '.join(tail)}")
                    continue
                r = json.loads(line[6:])
                print(
                    f"{size:<9} {kind:<8} {r['device']:<6} {r['step_s']:>8.3f} {r['run_s']:>7.1f} {r['peak_mb']:>9.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
