"""bench/gpu_check.py runs at a tiny size on CPU and prints its one table; without torch or
transformers it says what it needs instead of a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"


@pytest.mark.slow
def test_tiny_run_prints_every_row():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny"], capture_output=True, text=True, timeout=600, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[1].split()[:2] == ["check", "shape"]
    rows = {line.split("  ")[0].strip() for line in lines[3:] if not line.startswith("#")}
    assert rows == {"generate b1", "generate b8", "generate b64", "reward", "dpo", "ppo"}
    assert "tok/s" in out.stdout and out.stdout.rstrip().splitlines()[-1].startswith("# total")


def test_says_what_it_needs_without_torch(tmp_path):
    # A `torch` that cannot be imported, first on the path: the script must name what is missing.
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("raise ImportError('no torch here')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny"], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 2
    assert "gpu_check needs torch" in out.stderr and "Django" in out.stderr
    assert "Traceback" not in out.stderr
