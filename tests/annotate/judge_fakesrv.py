"""A scripted fake OpenAI-compatible server for judge tests that need what
``generation.openai_server`` cannot do: answers without token usage, HTTP errors, outages.

Each request pops a behaviour from ``script`` (then uses ``default``); a behaviour is
``fn(handler, body)`` and answers with :func:`send`. Started on 127.0.0.1 in a thread.
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
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n) or b"{}")
        state = self.server.state
        with state["lock"]:
            state["bodies"].append(body)
            behaviour = state["script"].pop(0) if state["script"] else state["default"]
        behaviour(self, body)


def send(
    handler, status: int, payload=None, *, raw: bytes | None = None, content_type="application/json"
) -> None:
    """Answer ``status`` with ``payload`` as JSON (a NUL travels as \\u0000, a lone surrogate as
    \\ud800), or with the bytes ``raw`` as they are, under ``content_type``."""
    data = raw if raw is not None else json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def completion(text: str, *, usage: dict | bool | None = True) -> dict:
    payload = {
        "id": "x",
        "object": "chat.completion",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }
    if usage is True:
        payload["usage"] = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
    elif isinstance(usage, dict):
        payload["usage"] = usage
    return payload


def answering(fn, *, usage: dict | bool | None = True):
    """A behaviour answering ``fn(content of the last user turn)`` as the model's text."""

    def behaviour(handler, body) -> None:
        send(handler, 200, completion(fn(body["messages"][-1]["content"]), usage=usage))

    return behaviour


def refusing(status: int, message: str):
    """A behaviour answering ``status`` with an OpenAI error object that says ``message``."""

    def behaviour(handler, body) -> None:
        send(handler, status, {"error": {"message": message}})

    return behaviour


def down(handler, body) -> None:
    send(handler, 503, {"error": {"message": "overloaded"}})


def refused(handler, body) -> None:
    send(handler, 400, {"error": {"message": "bad request"}})


def start(*, script=(), default=None):
    """(server, base url, state); ``server.shutdown()`` when done."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.state = {"lock": threading.Lock(), "bodies": [], "script": list(script), "default": default}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}", server.state
