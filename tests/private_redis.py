"""A redis-server of one's own, for the tests (and ``bench/redis_sweep.py``) that start a private
broker on a free port so that stopping or filling it disturbs nothing shared: the free port, and
the wait until the new server answers."""

from __future__ import annotations

import socket
import time


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_answers(client, *, tries: int = 100, pause: float = 0.05) -> bool:
    """Whether the just-started server behind the redis ``client`` answers a PING within ``tries``
    attempts, ``pause`` seconds apart."""
    import redis

    for _ in range(tries):
        try:
            client.ping()
            return True
        except redis.exceptions.ConnectionError:
            time.sleep(pause)
    return False
