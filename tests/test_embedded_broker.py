"""The embedded broker publishes atomically (``core.broker``).

kombu's filesystem transport creates a message's file under its final name, then writes it; a
worker listing the folder in between took the empty file, failed with ``JSONDecodeError`` (an
unrecoverable error: the worker exits, and ``run_platform`` stops the platform with it) and the
message was lost. Seen in the judge-job resume test (tests/annotate/test_jobs_resume.py) as a
generation worker dying while the beat published; ``bench/embedded_broker.py`` measures it: two
processes publishing 3,000 messages each to a folder one reader drained, kombu's transport lost 648
to torn reads, ours none.
"""

from __future__ import annotations

import json
import multiprocessing
import os

from kombu import Connection
from kombu.transport.virtual.base import Empty

from core.broker import TRANSPORT, Transport
from tests.test_settings import _python

WRITERS, PER_WRITER = 2, 1500


def _channel(folder: str, transport: str = TRANSPORT):
    options = {"data_folder_in": folder, "data_folder_out": folder, "store_processed": False}
    return Connection("filesystem://", transport=transport, transport_options=options).default_channel


def _publish(folder: str, writer: int, transport: str) -> None:
    channel = _channel(folder, transport)
    for i in range(PER_WRITER):
        channel._put("q", {"writer": writer, "i": i, "pad": "x" * 20_000})


def test_a_reader_never_takes_a_half_written_message(tmp_path, transport=TRANSPORT):
    folder = str(tmp_path)
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=_publish, args=(folder, w, transport)) for w in range(WRITERS)]
    for w in writers:
        w.start()
    reader = _channel(folder, transport)
    got: list[tuple[int, int]] = []
    torn = 0
    while True:
        try:
            message = reader._get("q")
        except Empty:
            if not any(w.is_alive() for w in writers) and not any(
                n.endswith(".msg") for n in os.listdir(folder)
            ):
                break
            continue
        except json.JSONDecodeError:
            torn += 1
            continue
        got.append((message["writer"], message["i"]))
    assert all(w.exitcode == 0 for w in writers)
    assert torn == 0
    assert sorted(got) == [(w, i) for w in range(WRITERS) for i in range(PER_WRITER)]  # each once
    assert os.listdir(folder) == []  # no partial file left behind


def test_the_partial_file_is_never_taken_for_a_message(tmp_path):
    channel = _channel(str(tmp_path))
    (tmp_path / ".abc.partial").write_bytes(b'{"half":')  # a publisher that died mid-write
    channel._put("q", {"ok": 1})
    assert channel._get("q") == {"ok": 1}
    try:
        channel._get("q")
        raise AssertionError("the partial file was delivered")
    except Empty:
        pass


def test_the_settings_use_it_for_a_filesystem_broker_and_celery_connects_with_it(tmp_path):
    code = (
        "import django; django.setup()\n"
        "from django.conf import settings\n"
        "from config.celery import app\n"
        "print(settings.CELERY_BROKER_TRANSPORT)\n"
        "with app.connection_for_write() as c: print(c.transport_cls, type(c.transport).__module__)\n"
    )
    result = _python(code, tmp_path, DJANGO_SETTINGS_MODULE="config.settings.local")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [TRANSPORT, TRANSPORT, Transport.__module__]
    on_redis = _python(
        "import django; django.setup(); from django.conf import settings; "
        "print(getattr(settings, 'CELERY_BROKER_TRANSPORT', None))",
        tmp_path,
        DJANGO_SETTINGS_MODULE="config.settings.local",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
    )
    assert on_redis.returncode == 0 and on_redis.stdout.strip() == "None", on_redis.stderr


def test_celery_publishes_one_whole_message_file(tmp_path):
    """A publish through Celery's own API (as the outbox sends) lands as one whole ``.msg`` file."""
    folder = tmp_path / "queue"
    folder.mkdir()
    code = (
        "import django; django.setup()\n"
        "from config.celery import app\n"
        "app.send_task('annotate.outbox_flush', args=[])\n"
    )
    env = {"CELERY_BROKER_FOLDER": str(tmp_path), "DJANGO_SETTINGS_MODULE": "config.settings.local"}
    result = _python(code, tmp_path, **env)
    assert result.returncode == 0, result.stderr
    (message,) = [p for p in folder.iterdir()]
    assert message.name.endswith(".default.msg")
    assert json.loads(message.read_bytes())["headers"]["task"] == "annotate.outbox_flush"
