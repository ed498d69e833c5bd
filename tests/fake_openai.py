"""A scripted fake OpenAI-compatible server on 127.0.0.1, for the tests that need what
``generation.openai_server`` cannot do: HTTP errors, malformed or odd answers, outages. Used by the
judge tests (``tests/annotate/judge_fakesrv.py``) and the openai backend's tests
(``tests/generation/test_backend_openai_defects.py``).

Each POST is recorded in ``state["requests"]`` (path, JSON body, headers), then answered by the next
behaviour of ``script`` (once it is used up, by ``default``); a behaviour is ``fn(handler, body)``
and answers with :func:`send`. Started in a thread by :func:`start`.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        state = self.server.state
        with state["lock"]:
            state["requests"].append({"path": self.path, "body": body, "headers": dict(self.headers)})
            behaviour = state["script"].pop(0) if state["script"] else state["default"]
        behaviour(self, body)


def send(
    handler,
    status: int,
    payload=None,
    *,
    raw: bytes | None = None,
    headers: dict | None = None,
    content_type: str = "application/json",
) -> None:
    """Answer ``status`` with ``payload`` as JSON (a NUL travels as \\u0000, a lone surrogate as
    \\ud800), or with the bytes ``raw`` as they are, under ``content_type`` and the extra
    ``headers``."""
    data = raw if raw is not None else json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


def start(*, script=(), default=None):
    """(server, base url, state); ``server.shutdown()`` when done (the ``stop_servers`` fixture)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.state = {"lock": threading.Lock(), "requests": [], "script": list(script), "default": default}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}", server.state
