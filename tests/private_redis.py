"""A redis-server of one's own, for the tests (and ``bench/redis_sweep.py``) that start a private
broker on a free port so that stopping or filling it disturbs nothing shared: the free port, and
the wait until the new server answers."""

from __future__ import annotations

import time

from bench.common import free_port  # noqa: F401 - the one free-port helper, named here for its users


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
