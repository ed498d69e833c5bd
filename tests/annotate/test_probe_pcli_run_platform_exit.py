"""``run_platform`` when one of its processes dies (the web server cannot bind its --addr, a worker
exits on a broker error).

Before: the command printed "The web process exited with code 3; stopping.", stopped the others and
then exited 0, as after Ctrl+C: ``make run`` and any supervisor or script took the platform's
failure for a clean stop.
Now: it stops the others the same way, then ends with a one-line CommandError naming the process
and its exit code (exit status 1). Ctrl+C (or SIGTERM) still stops it with status 0.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

REAL_POPEN = subprocess.Popen


@pytest.fixture
def fake_children(monkeypatch):
    """Every child sleeps, except the web server, which exits with code 3 at once; the SIGTERM
    handler the command installs is put back afterwards."""
    started = []

    def popen(argv, **kwargs):
        code = "import sys; sys.exit(3)" if "runserver" in argv else "import time; time.sleep(60)"
        proc = REAL_POPEN([sys.executable, "-c", code], **kwargs)
        started.append(proc)
        return proc

    monkeypatch.setattr("annotate.management.commands.run_platform.subprocess.Popen", popen)
    before = signal.getsignal(signal.SIGTERM)
    yield started
    signal.signal(signal.SIGTERM, before)


def test_a_process_that_dies_ends_the_command_with_an_error(fake_children, capsys):
    with pytest.raises(
        CommandError, match=r"^The web process exited with code 3; the platform was stopped\.$"
    ):
        call_command("run_platform")
    assert len(fake_children) == 4
    assert all(proc.poll() is not None for proc in fake_children)  # every other process was stopped


def test_sigterm_is_still_a_clean_stop(monkeypatch):
    import os
    import threading

    started = []

    def popen(argv, **kwargs):
        proc = REAL_POPEN([sys.executable, "-c", "import time; time.sleep(60)"], **kwargs)
        started.append(proc)
        return proc

    monkeypatch.setattr("annotate.management.commands.run_platform.subprocess.Popen", popen)
    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM))
    try:
        timer.start()
        call_command("run_platform")  # returns: no CommandError
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, before)
    assert len(started) == 4 and all(proc.poll() is not None for proc in started)
