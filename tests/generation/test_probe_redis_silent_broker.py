"""A Redis broker that takes the connection and never answers (frozen, or lost behind a network
partition) makes the sweep send nothing and return, instead of holding its worker.

messages_waiting opened its connection with no socket timeout (kombu's Redis transport ignores the
Connection's ``connect_timeout``; it reads ``socket_timeout``/``socket_connect_timeout`` from the
transport options), so its first command waited for ever: seen with a SIGSTOPped private
redis-server, where the read was still blocked after 25 s. The sweep ran in the general worker
(concurrency 1), which then ran nothing else (outbox flush, lease expiry) until the broker answered
or TCP gave up. Here a plain socket plays the silent broker.
"""

from __future__ import annotations

import socket
import threading

import pytest

from core.outbox import messages_waiting

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def silent_broker():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)  # the kernel completes the handshakes; nobody ever reads or answers
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    server.close()


def test_a_broker_that_never_answers_sends_nothing(silent_broker, settings):
    settings.CELERY_BROKER_URL = silent_broker
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    result: list = []
    reader = threading.Thread(
        target=lambda: result.append(messages_waiting("generation.run_batch")), daemon=True
    )
    reader.start()
    reader.join(timeout=120)  # a bound for the test itself, far above the read's own timeout
    assert not reader.is_alive(), "messages_waiting is still waiting for a broker that never answers"
    assert result == [None]
