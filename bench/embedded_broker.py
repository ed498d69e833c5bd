#!/usr/bin/env python
"""The embedded (filesystem) broker under concurrent publishing: how many messages a reader loses
to torn reads, with kombu's own filesystem transport and with ours (``core.broker``).

    .venv/bin/python bench/embedded_broker.py [--writers 2] [--messages 3000] [--size 20000]

``--writers`` processes each publish ``--messages`` messages of ``--size`` bytes to one queue
folder while this process drains it the way a worker does (``Channel._get``). A torn read is a
message file taken before its writer finished it: a worker fails on it with ``JSONDecodeError``,
which Celery treats as unrecoverable (the worker exits), and the message is lost. Prints, per
transport: messages received, torn reads, and publishing throughput.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TRANSPORTS = {"kombu filesystem": "filesystem", "core.broker": "core.broker:Transport"}


def _channel(folder: str, transport: str):
    from kombu import Connection

    options = {"data_folder_in": folder, "data_folder_out": folder, "store_processed": False}
    return Connection("filesystem://", transport=transport, transport_options=options).default_channel


def _publish(folder: str, transport: str, n: int, size: int) -> None:
    sys.path.insert(0, str(ROOT))
    channel = _channel(folder, transport)
    for i in range(n):
        channel._put("q", {"i": i, "pad": "x" * size})


def run(transport: str, writers: int, n: int, size: int) -> tuple[int, int, float]:
    from kombu.transport.virtual.base import Empty

    folder = tempfile.mkdtemp(prefix="prefhub-broker-bench-")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_publish, args=(folder, transport, n, size)) for _ in range(writers)]
    reader = _channel(folder, transport)
    start = time.perf_counter()
    for p in procs:
        p.start()
    got = torn = 0
    while True:
        try:
            reader._get("q")
            got += 1
        except Empty:
            if not any(p.is_alive() for p in procs) and not any(
                f.endswith(".msg") for f in os.listdir(folder)
            ):
                break
        except json.JSONDecodeError:
            torn += 1
    return got, torn, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--messages", type=int, default=3000, help="per writer")
    parser.add_argument("--size", type=int, default=20000, help="bytes of padding per message")
    args = parser.parse_args()
    total = args.writers * args.messages
    print(f"{args.writers} writer processes x {args.messages:,} messages of ~{args.size:,} B, one reader")
    for label, transport in TRANSPORTS.items():
        got, torn, seconds = run(transport, args.writers, args.messages, args.size)
        print(
            f"{label:>17}: received {got:,} of {total:,}, torn reads (lost, worker would exit) {torn:,}, "
            f"{total / seconds:,.0f} msg/s"
        )


if __name__ == "__main__":
    main()
