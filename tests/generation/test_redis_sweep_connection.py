"""The sweep reads Redis through the connection the workers use.

The defect: ``core.outbox._in_redis_lists`` opened its own ``kombu.Connection(url, ...)``, which
knows nothing of Celery's broker settings: behind a TLS Redis that asks for client certificates
(``broker_use_ssl``), or with a broker user and password set apart from the URL, the sweep could
not connect, logged a warning and resent nothing, while the workers ran. Now it opens Celery's own
broker connection (``app.connection_for_write``), with the sweep's timeouts added."""

from __future__ import annotations

import pytest
from kombu import Connection

from core import outbox

pytestmark = [pytest.mark.redis, pytest.mark.django_db]

TLS = {
    "ssl_certfile": "/etc/prefhub/client.crt",
    "ssl_keyfile": "/etc/prefhub/client.key",
    "ssl_cert_reqs": 2,
}


def test_the_sweep_connects_with_the_brokers_tls_and_login(settings, monkeypatch):
    from config.celery import app

    seen = []

    def enter(self):
        seen.append(self)
        raise ConnectionError("stopped here: the test reads how the connection was set up")

    settings.CELERY_BROKER_URL = "rediss://127.0.0.1:6390/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    monkeypatch.setitem(app.conf, "broker_use_ssl", TLS)
    monkeypatch.setitem(app.conf, "broker_password", "s3cret")
    monkeypatch.setattr(Connection, "__enter__", enter)
    assert outbox.messages_waiting("generation.run_batch") is None  # could not read: sends nothing
    (connection,) = seen
    assert connection.ssl == TLS
    assert connection.password == "s3cret"
    assert connection.hostname == "127.0.0.1" and connection.port == 6390
    options = connection.transport_options
    assert options["visibility_timeout"] == 3600 and options["max_retries"] == 0
    assert options["socket_timeout"] == 10 and options["socket_connect_timeout"] == 2
