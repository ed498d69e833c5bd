"""Import throughput: a 100k-line JSONL (2 candidates each -> 100k pairwise tasks) through the
same service as `manage.py import_prompts`, atomic mode.

Usage: [DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_import] .venv/bin/python bench/import_prompts.py [--lines 100000]
Without DATABASE_URL it uses a fresh SQLite file in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=100_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="prefhub-bench-import-"))
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = f"sqlite:///{tmp / 'bench.sqlite3'}"
    elif os.environ["DATABASE_URL"].startswith("postgres"):
        from bench.claim_submit import _ensure_database

        _ensure_database(os.environ["DATABASE_URL"])
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput", "-v0"], check=True)
    path = tmp / "prompts.jsonl"
    with open(path, "w") as f:
        for i in range(args.lines):
            f.write(
                json.dumps(
                    {
                        "id": f"b{i}",
                        "messages": [
                            {"role": "user", "content": f"Question number {i}: how do I do thing {i % 97}?"}
                        ],
                        "candidates": [
                            {"text": f"An answer to {i} " * 20, "model": "model-a"},
                            {"text": f"Another answer to {i} " * 15, "model": "model-b"},
                        ],
                    }
                )
                + "\n"
            )
    import django

    django.setup()
    from django.db import connection

    from annotate.services.imports import prompts_import
    from annotate.services.projects import project_create

    project = project_create(name=f"import bench {time.time_ns()}", overlap=3)
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        report = prompts_import(project=project, stream=f)
    elapsed = time.perf_counter() - t0
    size_mb = path.stat().st_size / 1e6
    print(
        f"{connection.vendor}: imported {report.lines:,} lines ({size_mb:.0f} MB) -> {report.prompts:,} prompts, "
        f"{report.candidates:,} candidates, {report.tasks:,} tasks in {elapsed:.1f} s "
        f"({report.lines / elapsed:,.0f} lines/s)"
    )


if __name__ == "__main__":
    main()
