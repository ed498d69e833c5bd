"""python manage.py run_platform: the web server and a real Celery worker, together, in one command.

With no DATABASE_URL/CELERY_BROKER_URL set this is SQLite plus kombu's filesystem transport (a real
worker process reading the queue folder under var/broker); point the environment at PostgreSQL and
Redis and the same command uses them. Ctrl+C stops both.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if this process dies, even by SIGKILL (no orphaned server)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Command(BaseCommand):
    help = "Run the web server and a Celery worker (queues default, generation, training) until Ctrl+C."

    def add_arguments(self, parser):
        parser.add_argument(
            "--addr", default="127.0.0.1:8000", help="Address for the web server (default 127.0.0.1:8000)."
        )
        parser.add_argument("--concurrency", type=int, default=2, help="Worker processes (default 2).")

    def handle(self, *args, **opts):
        env = dict(os.environ)
        env.setdefault(
            "DJANGO_SETTINGS_MODULE", os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings.base")
        )
        python = sys.executable
        broker = settings.CELERY_BROKER_URL.split("@")[-1]
        self.stdout.write(
            f"Broker: {broker}   Database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}"
        )
        worker = subprocess.Popen(
            [
                python,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                "default,generation,training",
                "--concurrency",
                str(opts["concurrency"]),
                "--beat",
                "--schedule",
                str(settings.VAR_DIR / "celerybeat-schedule"),
                "--loglevel",
                "INFO",
                "--hostname",
                "prefhub@%h",
            ],
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        web = subprocess.Popen(
            [python, "manage.py", "runserver", opts["addr"], "--noreload"],
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.stdout.write(
            self.style.SUCCESS(f"PrefHub is running at http://{opts['addr']}/  (Ctrl+C to stop)")
        )
        procs = {"worker": worker, "web": web}

        def on_term(signum, frame):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, on_term)
        try:
            while True:
                for name, proc in procs.items():
                    if proc.poll() is not None:
                        self.stderr.write(f"The {name} process exited with code {proc.returncode}; stopping.")
                        raise KeyboardInterrupt
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)  # the worker's main process shuts its pool down warmly
            deadline = time.monotonic() + 15
            for proc in procs.values():
                try:
                    proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
