"""Import throughput: a 100k-line JSONL (2 candidates each -> 100k pairwise tasks) through the
same service as `manage.py import_prompts`, atomic mode.

Usage: [DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_import] .venv/bin/python bench/import_prompts.py [--lines 100000]
Without DATABASE_URL it uses a fresh SQLite file in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import database_ready, write_prompts  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=100_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="prefhub-bench-import-"))
    database_ready(tmp)
    path = tmp / "prompts.jsonl"
    write_prompts(path, args.lines)
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
