"""Read ahead in a background thread: the one producer/consumer queue behind the prompt import's
reader and the export's record prefetch."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def read_ahead(
    items: Iterable[T],
    *,
    depth: int,
    name: str,
    poll: float = 0.1,
    join_timeout: float | None = None,
    on_exit: Callable[[], None] | None = None,
) -> Iterator[T]:
    """Iterate ``items`` in a daemon thread named ``name``, at most ``depth`` items ahead of the
    consumer (memory stays bounded); an exception of the producer is raised here. When the consumer
    stops early the thread is told to stop (it looks every ``poll`` seconds while the queue is full)
    and joined (up to ``join_timeout`` seconds; None: until it ends). ``on_exit`` runs in the thread
    as it ends, however it ends (e.g. to close the thread's database connections)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=poll)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)
        finally:
            if on_exit is not None:
                on_exit()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=join_timeout)
