"""DPO on each pair's target probability (soft labels, label smoothing): what it costs and what it
changes. Prints figures; asserts nothing.

Usage:
    .venv/bin/python bench/dpo_targets.py [--family qwen] [--pairs 96] [--steps 24] [--max-length 96]

Model: a zoo checkpoint (``generation.zoo``, bf16-saved, trained in fp32 masters on the CPU as the
runner does), random-initialised: the figures compare runs of the same model, data and seed, not a
model's quality. Data: prompts whose "good" reply is preferred by a share p of labelers, p drawn
from {0.55, 0.7, 0.85, 1.0} per pair (a soft label, as an export's ``soft_labels`` writes
``p_chosen``); the same pairs are held out (the question is what the model learns of p).

Runs (DPO runner, sigmoid loss, beta 0.5, lr 1e-3, batch 8, seed 0):
    hard      every pair trained as chosen over rejected (the file without p_chosen)
    smoothed  label_smoothing 0.2 (conservative DPO: TRL 1.16's sigmoid loss ignored it before)
    soft      p_chosen trained on (q = p)

Printed per run: its wall time (loading, held-out scoring before and after, training and saving), train loss, and on the held-out pairs the accuracy, the mean
implicit-reward margin and, against the soft labels, the soft log loss (-(p log s(x) + (1 - p)
log s(-x)): lower is a margin that says p, not certainty) and the mean |sigmoid(x) - p|.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOOD = ["Yes, here is a clear answer.", "Thanks! The answer is four.", "Paris is the capital.", "Sort it."]
BAD = ["No.", "I cannot help.", "Maybe, maybe not.", "The fox jumps."]


def _rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        rows.append(
            {
                "prompt": [{"role": "user", "content": f"Question {i}: what is it?"}],
                "chosen": [{"role": "assistant", "content": rng.choice(GOOD)}],
                "rejected": [{"role": "assistant", "content": rng.choice(BAD)}],
                "p_chosen": rng.choice([0.55, 0.7, 0.85, 1.0]),
            }
        )
    return rows


def _write(path: Path, rows: list[dict], soft: bool) -> str:
    keep = rows if soft else [{k: v for k, v in r.items() if k != "p_chosen"} for r in rows]
    path.write_text("".join(json.dumps(r) + "\n" for r in keep), encoding="utf-8")
    return str(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", default="qwen")
    parser.add_argument("--pairs", type=int, default=96)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--max-length", type=int, default=96)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()
    import torch

    from generation.zoo import build_zoo_model
    from training.runners import dpo
    from training.runners.configs import config_for
    from training.runners.protocol import Emitter

    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    work = Path(tempfile.mkdtemp(prefix="dpo-targets-"))
    base = str(build_zoo_model(args.family, work / "base"))
    rows = _rows(args.pairs, seed=1)
    soft_file, hard_file = _write(work / "soft.jsonl", rows, True), _write(work / "hard.jsonl", rows, False)
    held_out = soft_file  # scored against the soft labels in every run

    class Quiet:
        def write(self, _text):
            pass

        def flush(self):
            pass

    runs = {
        "hard": (hard_file, {}),
        "smoothed": (hard_file, {"label_smoothing": 0.2}),
        "soft": (soft_file, {}),
    }
    print(
        f"{args.family}-like zoo model, {args.pairs} pairs, {args.steps} steps, max_length {args.max_length}"
    )
    print(
        f"{'run':9} {'run s':>7} {'train loss':>10} {'accuracy':>8} {'margin':>7} {'soft log loss':>13} {'|s(x)-p|':>9}"
    )
    for name, (data, extra) in runs.items():
        cfg = config_for(
            "dpo",
            {
                "base_model": base,
                "dataset_path": data,
                "eval_dataset_path": held_out,
                "output_dir": str(work / name),
                "use_cpu": True,
                "learning_rate": 1e-3,
                "beta": 0.5,
                "max_steps": args.steps,
                "per_device_train_batch_size": 8,
                "max_length": args.max_length,
                "logging_steps": args.steps,
                "seed": 0,
                **extra,
            },
        )
        with open(os.devnull, "w") as devnull, redirect_stdout(devnull), redirect_stderr(devnull):
            started = time.perf_counter()
            final = dpo.run(cfg, Emitter(stream=Quiet()))
            seconds = time.perf_counter() - started
            # |sigmoid(x) - p| per held-out pair is not among the run's figures: computed here
            gap = _calibration_gap(work / name, base, soft_file, cfg)
        print(
            f"{name:9} {seconds:7.1f} {final['train_loss']:10.4f} {final['eval_accuracy']:8.3f} "
            f"{final['eval_margin']:7.3f} {final['eval_soft_log_loss']:13.4f} {gap:9.3f}"
        )
    return 0


def _calibration_gap(model_dir: Path, base: str, data: str, cfg) -> float:
    """Mean |sigmoid(x) - p| over the held-out pairs, x the trained model's implicit-reward margin."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.runners.data import dpo_ids, load_preferences
    from training.services.evaluation import dpo_reference

    tokenizer = AutoTokenizer.from_pretrained(base)
    rows = load_preferences(data).rows
    pairs = [dpo_ids(tokenizer, r) for r in rows]
    ref = dpo_reference(AutoModelForCausalLM.from_pretrained(base, dtype="float32"), tokenizer, pairs)
    now = dpo_reference(AutoModelForCausalLM.from_pretrained(model_dir), tokenizer, pairs)
    gaps = []
    for i, r in enumerate(rows):
        x = cfg.beta * ((now["chosen"][i] - ref["chosen"][i]) - (now["rejected"][i] - ref["rejected"][i]))
        gaps.append(abs(1 / (1 + math.exp(-max(min(x, 50), -50))) - r["p_chosen"]))
    return sum(gaps) / len(gaps)


if __name__ == "__main__":
    sys.exit(main())
