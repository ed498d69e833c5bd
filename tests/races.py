"""Forcing a race between two real PostgreSQL sessions, without sleeping and hoping.

``HeldTransaction`` runs a service call (the first writer) in a thread with its own connection and
pauses it at a hook the service calls after its writes and before its COMMIT (its ``audit_record``,
say). While it is paused the test makes the second call in the main thread; the first writer
commits only once another session is seen waiting on one of its locks (``pg_stat_activity``), so
the second call has read the state from before the commit and is blocked on the first writer's
uncommitted row or row lock when that commit lands.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connections

from annotate.errors import Conflict


def someone_waits_on_a_lock(timeout: float = 10.0) -> bool:
    """Whether another session of this database is blocked on a lock (polled from a connection of
    its own)."""
    watcher = connections.create_connection("default")
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with watcher.cursor() as cur:
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = current_database()"
                )
                if cur.fetchone()[0]:
                    return True
            time.sleep(0.05)
        return False
    finally:
        watcher.close()


class HeldTransaction:
    """``with HeldTransaction(monkeypatch, "pkg.module.audit_record", lambda: service(...)) as first:``
    runs the call in a thread, paused at ``hook`` until another session waits on a lock; on leaving
    the block the thread is joined. ``first.result`` / ``first.error``: what the call gave;
    ``first.other_waited``: whether a second session was seen waiting before the commit. With
    ``nth``, the pause is at the hook's nth call in the thread (after the writes before it)."""

    def __init__(self, monkeypatch, hook: str, call: Callable[[], Any], *, nth: int = 1) -> None:
        module_path, name = hook.rsplit(".", 1)
        module = importlib.import_module(module_path)
        real = getattr(module, name)
        self.reached = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.other_waited = False
        self._call = call
        self._calls = 0
        self._thread = threading.Thread(target=self._run, name="held-transaction")

        def held(*args, **kwargs):
            if threading.current_thread() is self._thread and not self.reached.is_set():
                self._calls += 1
                if self._calls < nth:
                    return real(*args, **kwargs)
                self.reached.set()
                self.other_waited = someone_waits_on_a_lock()
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, held)

    def _run(self) -> None:
        try:
            self.result = self._call()
        except BaseException as exc:  # reported to the test
            self.error = exc
        finally:
            self.reached.set()
            connections.close_all()

    def __enter__(self) -> HeldTransaction:
        self._thread.start()
        assert self.reached.wait(20), "the first call never reached its hook"
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *exc) -> None:
        self._thread.join(30)
        assert not self._thread.is_alive(), "the first call did not finish"


def second_is_a_conflict(
    monkeypatch, hook: str, first_call: Callable[[], Any], second_call: Callable[[], Any]
) -> tuple[HeldTransaction, Conflict]:
    """Run ``first_call`` held at ``hook`` (a ``HeldTransaction``) and ``second_call`` meanwhile: the
    second must wait on the first's uncommitted writes and then raise ``Conflict``, the first must
    succeed. Returns the first's ``HeldTransaction`` (its ``result``) and the second's ``Conflict``."""
    with HeldTransaction(monkeypatch, hook, first_call) as first, pytest.raises(Conflict) as exc:
        second_call()
    assert first.other_waited, "the second call never waited on the first's uncommitted writes"
    assert first.error is None, first.error
    return first, exc.value


@contextlib.contextmanager
def another_worker_runs(model, pk: int) -> Iterator[None]:
    """Hold job ``pk``'s ``core.jobs.run_alone`` lock from a connection of its own, as a worker
    running that job would. Released explicitly: a closed session's locks go only once its server
    process has ended, a moment later."""
    from core.jobs import _advisory_key

    key = _advisory_key(model, pk)
    other = connections.create_connection("default")
    try:
        with other.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", key)
        yield
        with other.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", key)
    finally:
        other.close()


def sweep_held_after_its_first_task(monkeypatch, call: Callable[[], Any]) -> HeldTransaction:
    """``call`` (a sweep, a deactivation: a writer giving back the claims of several tasks through
    ``leasing._release_claims``) in a thread of its own, paused after the UPDATE of its first task
    (at the rule for the second) until another session waits on a lock."""
    return HeldTransaction(monkeypatch, "annotate.services.leasing.task_target_kept", call, nth=2)


#: Lease time of ``two_tasks_held_table_order_reversed``'s leases.
RACE_TTL = 60


def two_tasks_held_table_order_reversed(labelers_on, **settings):
    """A project (overlap 2, ``settings``) of two tasks both leased by one labeler, each with a
    stale priority (123.0); the first task's row is written last, so a scan of the project's tasks
    meets the second one first, while the sweep takes them in id order. Returns (project, labeler,
    task ids in id order, now)."""
    from django.utils import timezone

    from annotate.models import Task
    from annotate.services.leasing import task_claim_next

    project, bob = labelers_on(1, prompts=2, overlap=2, lease_ttl_seconds=RACE_TTL, **settings)
    now = timezone.now()
    first = task_claim_next(project=project, labeler=bob, now=now)
    second = task_claim_next(project=project, labeler=bob, exclude_assignment_ids=[first.pk], now=now)
    ids = sorted([first.task_id, second.task_id])
    for task_id in reversed(ids):
        Task.objects.filter(pk=task_id).update(priority=123.0)
    return project, bob, ids, now
