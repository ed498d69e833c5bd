"""python manage.py run_platform: the web server, the Celery workers and beat, together, in one command.

With no DATABASE_URL/CELERY_BROKER_URL set this is SQLite plus kombu's filesystem transport (real
worker processes reading the queue folder under var/broker); point the environment at PostgreSQL
and Redis and the same command uses them. Ctrl+C stops everything.

Processes (each in its own process group, each killed as a whole group on the way out, so the
pool's children and vLLM's engine processes go too; each also gets SIGTERM if this command dies,
even by SIGKILL):

* ``GENERATION_WORKER``: the generation queue, ``--pool solo``. vLLM starts its engine in child
  processes, which a prefork pool's daemonic children may not do ("daemonic processes are not
  allowed to have children"); solo runs the task in the worker's main process, one batch at a time.
* ``general_worker``: the default and training queues, prefork.
* ``BEAT``: the periodic sweeps (outbox, leases, stale training runs, orphaned generation batches),
  a process of its own so it dies with this command and never runs twice.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.cli import option_in_range

#: The generation queue's worker, as the README's production section runs it (after ``python``).
GENERATION_WORKER = [
    "-m", "celery", "-A", "config", "worker", "-Q", "generation", "--pool", "solo",
    "--loglevel", "INFO", "--hostname", "generation@%h",
]  # fmt: skip


MAX_CONCURRENCY = 64


def general_worker(concurrency: int) -> list[str]:
    return [
        "-m", "celery", "-A", "config", "worker", "-Q", "default,training", "--concurrency",
        str(concurrency), "--loglevel", "INFO", "--hostname", "prefhub@%h",
    ]  # fmt: skip


def beat(schedule: str) -> list[str]:
    return [
        "-m",
        "celery",
        "-A",
        "config",
        "beat",
        "--schedule",
        schedule,
        "--pidfile=",
        "--loglevel",
        "INFO",
    ]


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if this process dies, even by SIGKILL (no orphaned server)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_groups(procs: list[subprocess.Popen], *, grace: float = 15.0) -> None:
    """SIGTERM each child's whole process group (warm shutdown), then SIGKILL what is left of it."""
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
    while time.monotonic() < deadline and any(_group_alive(p.pid) for p in procs):
        time.sleep(0.1)
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


class Command(BaseCommand):
    help = "Run the web server, the Celery workers (generation; default+training) and beat until Ctrl+C."

    def add_arguments(self, parser):
        parser.add_argument(
            "--addr", default="127.0.0.1:8000", help="Address for the web server (default 127.0.0.1:8000)."
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=2,
            help=f"Processes of the default/training worker (1 to {MAX_CONCURRENCY}, default 2).",
        )

    def handle(self, *args, **opts):
        option_in_range("--concurrency", opts["concurrency"], 1, MAX_CONCURRENCY)
        env = dict(os.environ)
        env.setdefault(
            "DJANGO_SETTINGS_MODULE", os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings.base")
        )
        python = sys.executable
        broker = settings.CELERY_BROKER_URL.split("@")[-1]
        self.stdout.write(
            f"Broker: {broker}   Database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}"
        )

        def start(argv: list[str]) -> subprocess.Popen:
            return subprocess.Popen(
                [python, *argv], env=env, start_new_session=True, preexec_fn=_die_with_parent
            )

        procs = {
            "generation worker": start(GENERATION_WORKER),
            "worker": start(general_worker(opts["concurrency"])),
            "beat": start(beat(str(settings.VAR_DIR / "celerybeat-schedule"))),
            "web": start(["manage.py", "runserver", opts["addr"], "--noreload"]),
        }
        self.stdout.write(
            self.style.SUCCESS(f"PrefHub is running at http://{opts['addr']}/  (Ctrl+C to stop)")
        )

        def on_term(signum, frame):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, on_term)
        died = ""  # a process that exited on its own: the platform failed (Ctrl+C/SIGTERM: a clean stop)
        try:
            while not died:
                for name, proc in procs.items():
                    if proc.poll() is not None:
                        died = f"The {name} process exited with code {proc.returncode}"
                        self.stderr.write(f"{died}; stopping.")
                        break
                else:
                    time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            stop_groups(list(procs.values()))
        if died:
            raise CommandError(f"{died}; the platform was stopped.")
