#!/usr/bin/env python
"""What one beat sweep's read of a long Redis queue costs (``core.outbox._in_redis_lists``, the
broker half of ``messages_waiting``): time and peak Python memory, per queue length.

    .venv/bin/python bench/redis_sweep.py [--lengths 1000 10000 100000]

Starts its own redis-server on a free port (nothing shared is touched), fills the ``generation``
queue with ``generation.run_batch`` messages (a tenth of them at priority 9, in kombu's second
list) as Celery publishes them, and reads it as the generation sweep does (every message parsed)
and as the judge-job sweep does (same queue, another task: headers only). Prints figures only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.private_redis import free_port, redis_answers  # noqa: E402


def _measure(fn) -> tuple[object, float, float]:
    tracemalloc.start()
    t = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, seconds, peak / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1000, 10000, 100000])
    args = parser.parse_args()
    server = shutil.which("redis-server")
    if server is None:
        sys.exit("redis-server is not installed")
    port, folder = free_port(), tempfile.mkdtemp(prefix="prefhub-redis-sweep-")
    url = f"redis://127.0.0.1:{port}/0"
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--dir", folder, "--save", ""],
                            stdout=subprocess.DEVNULL)  # fmt: skip
    os.environ["CELERY_BROKER_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    try:
        import django

        django.setup()
        import redis

        from config.celery import app
        from core.outbox import _in_redis_lists

        client = redis.Redis(port=port)
        redis_answers(client)
        options = {"visibility_timeout": 3600}
        print(
            f"{'queue':>8} {'generation sweep read':>22} {'peak MB':>8} {'judge sweep read':>17} {'redis MB':>9}"
        )
        sent = 0
        for length in sorted(args.lengths):
            with app.producer_or_acquire() as producer:
                for i in range(sent, length):
                    app.send_task("generation.run_batch", args=[i], producer=producer,
                                  priority=9 if i % 10 == 0 else None)  # fmt: skip
            sent = length
            found, gen_s, gen_mb = _measure(lambda: _in_redis_lists("generation.run_batch", url, options))
            assert found is not None and len(found) == length, (length, found and len(found))
            _, judge_s, _ = _measure(lambda: _in_redis_lists("generation.judge_job_run", url, options))
            used = client.info("memory")["used_memory"] / 1e6
            print(f"{length:>8} {gen_s:>20.2f} s {gen_mb:>8.1f} {judge_s:>15.2f} s {used:>9.1f}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
