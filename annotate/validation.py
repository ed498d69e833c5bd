"""Untrusted JSON, parsed so that it can neither crash a request nor fail in the database: nesting
too deep for Python (``RecursionError``) and NUL characters (which PostgreSQL text and jsonb cannot
hold) become a ``json.JSONDecodeError`` like any other bad JSON, i.e. a 400 or a line error."""

from __future__ import annotations

import json


class UnsafeJSON(json.JSONDecodeError):
    def __init__(self, msg: str) -> None:
        super().__init__(msg, "", 0)
        self.args = (msg,)

    def __str__(self) -> str:
        return self.msg


def nul_path(obj: object) -> str | None:
    """Where a NUL character is in parsed JSON: the field path (``""`` at the top level, e.g.
    ``metadata.k[0]``), or None if there is none. Iterative, so any depth is walked safely."""
    stack: list[tuple[object, str]] = [(obj, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return path
        elif isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    return path
                stack.append((item, f"{path}.{key}" if path else key))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(value))
    return None


NESTED_TOO_DEEPLY = "nested too deeply"
NUL_MESSAGE = "contains a NUL character (\\u0000), which cannot be stored"


def json_loads_safe(raw: str | bytes) -> object:
    """``json.loads`` that raises ``UnsafeJSON`` (a ``JSONDecodeError``) for deep nesting or NUL."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise UnsafeJSON(NESTED_TOO_DEEPLY) from None
    where = nul_path(value)
    if where is not None:
        raise UnsafeJSON(f"{where or 'the value'} {NUL_MESSAGE}")
    return value
