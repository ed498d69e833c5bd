"""The embedded broker: kombu's filesystem transport, with messages published atomically.

``make run`` needs no broker service: Celery's messages are files in a folder
(``CELERY_BROKER_FOLDER``), one per message, that workers pick up by listing the folder and moving
a file out. kombu's own transport (5.x) creates the message's file under its final name and then
writes it, while a reader takes any file with that name without waiting for the writer's lock. A
worker that lists the folder in between reads an empty or partial message: ``JSONDecodeError``,
which Celery treats as an unrecoverable error, so the worker exits (and ``run_platform`` stops the
platform with it) and the message is gone. It happened in our tests under the sweeps' once-a-second
beat, and ``bench``-style load makes it frequent: two processes publishing 3,000 messages each to a
folder one reader drained lost 648 and 828 of the 6,000 to torn reads in two runs
(`bench/embedded_broker.py`).

Here a message is written whole to a hidden ``.<uuid>.partial`` file in the same folder (which no
reader takes: its name does not end in ``.<queue>.msg``) and renamed into place; a rename within a
folder is atomic, so a reader sees the whole message or none. Selected by the settings
(``CELERY_BROKER_TRANSPORT``) whenever the broker URL is ``filesystem://``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

#: The transport, as Celery's ``broker_transport`` setting names it.
TRANSPORT = "core.broker:Transport"


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        """Put ``payload`` on ``queue``: the same file name as kombu's (ordered by the publishing
        time), written under a name no reader takes, then renamed into place."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{uuid.uuid4()}.partial")
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
