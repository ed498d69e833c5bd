"""A small OpenAI-compatible chat server over any backend (the transformers one by default).

For tests and demos: the ``openai`` backend talks to it exactly as it would to ``vllm serve``.
It can misbehave on purpose: fail the first N requests with a 5xx, answer slowly, refuse n > 1,
or require an API key.

    python -m generation.openai_server --model PATH --port 8011 [--fail-first 2] [--delay 1.5]

Standard library only (http.server); generation is serialised behind a lock.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from generation.backends.base import InvalidSamplingParams, PromptError, SamplingParams

MAX_BODY_BYTES = 8 * 1024 * 1024


class ServerState:
    def __init__(
        self,
        backend,
        *,
        served_model_name: str,
        fail_first: int = 0,
        fail_status: int = 503,
        delay_s: float = 0.0,
        delay_first: int | None = None,
        refuse_n: bool = False,
        api_key: str | None = None,
    ) -> None:
        self.backend = backend
        self.served_model_name = served_model_name
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.delay_s = delay_s
        self.delay_first = delay_first
        self.refuse_n = refuse_n
        self.api_key = api_key
        self.requests = 0
        self.bodies: list[dict] = []
        self._count_lock = threading.Lock()
        self._generate_lock = threading.Lock()

    def next_request(self) -> int:
        with self._count_lock:
            self.requests += 1
            return self.requests

    def generate(self, messages: list[dict], params: SamplingParams):
        with self._generate_lock:
            return self.backend.generate([messages], params)[0]


class Handler(BaseHTTPRequestHandler):
    server_version = "prefhub-openai/1"
    protocol_version = "HTTP/1.1"

    @property
    def state(self) -> ServerState:
        return self.server.state  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeouts)
            self.wfile.write(body)

    def _error(
        self, status: int, message: str, *, kind: str = "invalid_request_error", code: str | None = None
    ) -> None:
        self._send(status, {"error": {"message": message, "type": kind, "code": code}})

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/health", "/v1/health"):
            self._send(200, {"status": "ok"})
        elif self.path.rstrip("/") == "/v1/models":
            self._send(
                200, {"object": "list", "data": [{"id": self.state.served_model_name, "object": "model"}]}
            )
        else:
            self._error(404, f"No route {self.path}")

    def do_POST(self) -> None:
        state = self.state
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._error(413, "Request body too large")
            return
        raw = self.rfile.read(length) if length else b""
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._error(404, f"No route {self.path}")
            return
        number = state.next_request()
        if state.api_key and self.headers.get("Authorization") != f"Bearer {state.api_key}":
            self._error(401, "Incorrect API key provided.", kind="authentication_error")
            return
        if number <= state.fail_first:
            self._error(
                state.fail_status, f"Injected failure {number} of {state.fail_first}", kind="server_error"
            )
            return
        if state.delay_s and (state.delay_first is None or number <= state.delay_first):
            time.sleep(state.delay_s)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._error(400, "The body is not valid JSON.")
            return
        state.bodies.append(body)
        if body.get("model") != state.served_model_name:
            self._error(404, f"The model {body.get('model')!r} does not exist.", code="model_not_found")
            return
        messages = body.get("messages")
        n = body.get("n", 1)
        if state.refuse_n and n != 1:
            self._error(400, "n > 1 is not supported by this server.")
            return
        stop = body.get("stop")
        if body.get("repetition_penalty", 1.0) != 1.0 or body.get("min_p", 0.0) != 0.0:
            self._error(400, "This server applies no repetition_penalty or min_p.")
            return
        top_k = body.get("top_k")
        try:
            params = SamplingParams(
                temperature=body.get("temperature", 1.0),
                top_p=body.get("top_p", 1.0),
                top_k=None if top_k == -1 else top_k,  # -1: vLLM's "no top-k cut"
                max_new_tokens=body.get("max_completion_tokens") or body.get("max_tokens") or 256,
                seed=body.get("seed"),
                n=n,
                stop=[stop] if isinstance(stop, str) else (stop or ()),
            )
        except InvalidSamplingParams as exc:
            self._error(400, str(exc), code=exc.field)
            return
        result = state.generate(messages, params)
        if isinstance(result, PromptError):
            self._error(
                400, result.message, code="context_length_exceeded" if "context" in result.message else None
            )
            return
        prompt_tokens = result[0].prompt_tokens or 0
        completion_tokens = sum(g.completion_tokens or 0 for g in result)
        self._send(
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": state.served_model_name,
                "system_fingerprint": f"prefhub-{getattr(state.backend, 'model_version', '')}",
                "choices": [
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": g.text},
                        "finish_reason": g.finish_reason,
                    }
                    for i, g in enumerate(result)
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )


def make_server(
    backend, *, host: str = "127.0.0.1", port: int = 0, served_model_name: str = "tiny", **options
) -> ThreadingHTTPServer:
    """A server bound to ``host:port`` (0 picks a free port: read ``server.server_address``)."""
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.state = ServerState(backend, served_model_name=served_model_name, **options)  # type: ignore[attr-defined]
    return server


def serve_in_thread(backend, **kwargs) -> tuple[ThreadingHTTPServer, str]:
    """Start a server on a free port in a daemon thread; returns it and its base URL (…/v1)."""
    server = make_server(backend, **kwargs)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    return server, f"http://{host}:{port}/v1"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="model path or name (transformers backend)")
    parser.add_argument(
        "--served-model-name", default=None, help="name clients send as 'model' (default: --model)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--fail-first", type=int, default=0, help="answer the first N requests with --fail-status"
    )
    parser.add_argument("--fail-status", type=int, default=503)
    parser.add_argument("--delay", type=float, default=0.0, help="sleep this long before answering")
    parser.add_argument("--delay-first", type=int, default=None, help="only delay the first N requests")
    parser.add_argument("--refuse-n", action="store_true", help="refuse n > 1 with a 400, as some servers do")
    parser.add_argument("--api-key-env", default=None, help="require 'Bearer $VAR' (the variable's name)")
    args = parser.parse_args(argv)

    import os

    from generation.backends.transformers import TransformersBackend

    backend = TransformersBackend(
        args.model, device=args.device, dtype=args.dtype, batch_size=args.batch_size
    )
    server = make_server(
        backend,
        host=args.host,
        port=args.port,
        served_model_name=args.served_model_name or args.model,
        fail_first=args.fail_first,
        fail_status=args.fail_status,
        delay_s=args.delay,
        delay_first=args.delay_first,
        refuse_n=args.refuse_n,
        api_key=os.environ.get(args.api_key_env) if args.api_key_env else None,
    )
    host, port = server.server_address[:2]
    print(f"OpenAI-compatible server for {args.model} on http://{host}:{port}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
