"""Peak memory of hostile imports (issue 12): each case runs in its own process and prints the
process's resident memory before the import and its peak (VmHWM from /proc, and ru_maxrss).

Cases
  gzip-bomb       a ~1 MB gzip of 1 GiB of "x" without a newline (refused as an over-long line)
  5000-candidates one line with 5,000 candidates, default limits (refused: over the candidate cap)
  5000-sampled    the same line with the candidate cap raised to 5,000 and one sampled pair per
                  prompt (imported: 5,000 candidates, 1 task, without building 12.5M pairs)

Goal: every peak under 200 MB.

Usage: [DATABASE_URL=postgres://...] .venv/bin/python bench/import_memory.py [--case NAME]
Without DATABASE_URL it uses a fresh SQLite file in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import database_ready  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

CASES = ("gzip-bomb", "5000-candidates", "5000-sampled")
GOAL_MB = 200


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _write_bomb(path: Path, gib: int = 1) -> None:
    """A gzip member of ``gib`` GiB of b"x" and no newline, written in 1 MiB pieces."""
    chunk = b"x" * (1024 * 1024)
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip header and trailer
    with open(path, "wb") as f:
        for _ in range(1024 * gib):
            f.write(comp.compress(chunk))
        f.write(comp.flush())


def _write_candidates(path: Path, n: int = 5000) -> None:
    line = {"id": "many", "prompt": "Pick one.", "candidates": [f"answer {i}" for i in range(n)]}
    path.write_text(json.dumps(line) + "\n")


def _child(case: str, path: Path) -> None:
    import django

    django.setup()
    from annotate.services.imports import ImportFailed, prompts_import
    from annotate.services.projects import project_create
    from annotate.services.tasks import PairMode

    project = project_create(name=f"memory {case} {time.time_ns()}")
    options = {}
    if case == "5000-sampled":
        options = {"task_mode": PairMode.SAMPLED_PAIRS, "pairs_per_prompt": 1}
    before = _status_mb("VmRSS")
    started = time.perf_counter()
    with open(path, "rb") as f:
        try:
            report = prompts_import(project=project, stream=f, **options)
            outcome = (
                f"imported {report.prompts} prompt(s), {report.candidates} candidates, {report.tasks} task(s)"
            )
        except ImportFailed as exc:
            outcome = f"refused: {exc.report.errors[0]}"
    seconds = time.perf_counter() - started
    peak = _status_mb("VmHWM")
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    verdict = "OK" if max(peak, maxrss) < GOAL_MB else "OVER GOAL"
    print(
        f"{case:16s} input {path.stat().st_size / 1024**2:7.2f} MB  rss before {before:6.1f} MB  "
        f"peak rss {peak:6.1f} MB (ru_maxrss {maxrss:6.1f} MB)  {seconds:6.1f} s  [{verdict} < {GOAL_MB} MB]  {outcome}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", choices=CASES)
    parser.add_argument("--child", nargs=2, metavar=("CASE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], Path(args.child[1]))
        return
    tmp = Path(tempfile.mkdtemp(prefix="prefhub-bench-memory-"))
    env = dict(os.environ)
    database_ready(tmp, env=env)
    inputs = {"gzip-bomb": tmp / "bomb.jsonl.gz", "5000-candidates": tmp / "many.jsonl"}
    inputs["5000-sampled"] = inputs["5000-candidates"]
    _write_bomb(inputs["gzip-bomb"])
    _write_candidates(inputs["5000-candidates"])
    for case in [args.case] if args.case else CASES:
        child_env = dict(env)
        if case == "5000-sampled":
            child_env["PREFHUB_MAX_CANDIDATES_PER_PROMPT"] = "5000"
        subprocess.run(
            [sys.executable, __file__, "--child", case, str(inputs[case])], check=True, env=child_env
        )


if __name__ == "__main__":
    main()
