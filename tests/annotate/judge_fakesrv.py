"""The judge tests' behaviours for the scripted fake OpenAI-compatible server
(:mod:`tests.fake_openai`, started by :func:`start`, answering with :func:`send`): answers with or
without token usage, HTTP errors, outages. A behaviour is ``fn(handler, body)``; the requests the
server took are in ``state["requests"]``.
"""

from __future__ import annotations

from tests.fake_openai import send, start

__all__ = ["answering", "completion", "down", "refused", "refusing", "send", "start"]


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
