"""Untrusted JSON, parsed so that it can neither crash a request nor fail in the database: nesting
too deep for Python (``RecursionError``), NUL characters (which PostgreSQL text and jsonb cannot
hold) and unpaired surrogates (JSON may spell half of a UTF-16 pair, ``\\ud800``; Python keeps it as
a lone surrogate, which is not text and which no database encoding can store) and the numbers
Python's json reads but jsonb cannot hold (NaN, Infinity, and 1e999, read as infinity) become a
``json.JSONDecodeError`` like any other bad JSON, i.e. a 400 or a line error."""

from __future__ import annotations

import json
import math
import re
import sys
import unicodedata


class UnsafeJSON(json.JSONDecodeError):
    def __init__(self, msg: str) -> None:
        super().__init__(msg, "", 0)
        self.args = (msg,)

    def __str__(self) -> str:
        return self.msg


NESTED_TOO_DEEPLY = "nested too deeply"
NUL_MESSAGE = "contains a NUL character (\\u0000), which cannot be stored"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def is_blank(text: str) -> bool:
    """Nothing a reader could see: only whitespace and invisible format characters (Unicode
    category Cf: zero-width space and joiners, word joiner, byte-order mark, soft hyphen, direction
    marks). The one rule for an empty response, on the labeling page and in generation's checks."""
    return all(ch.isspace() or unicodedata.category(ch) == "Cf" for ch in text)


def _message(char: str) -> str:
    if char == "\x00":
        return NUL_MESSAGE
    return f"contains an unpaired surrogate (\\u{ord(char):04x}), which is not text and cannot be stored"


def storable_text(value: str | None) -> str:
    """Text from a model (a random or broken one emits anything) made storable: a NUL or an
    unpaired surrogate becomes U+FFFD, the replacement character."""
    return _UNSTORABLE.sub("\ufffd", value or "")


def unstorable_at(obj: object) -> tuple[str, str] | None:
    """Where parsed JSON holds text that cannot be stored (a NUL or an unpaired surrogate), and
    what is wrong: ``(path, message)``, the path ``""`` at the top level or e.g. ``metadata.k[0]``
    (a bad key names the object holding it); None when all of it can be stored. Iterative, so any
    depth is walked safely."""
    stack: list[tuple[object, str]] = [(obj, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            bad = _UNSTORABLE.search(value)
            if bad:
                return path, _message(bad.group())
        elif isinstance(value, dict):
            for key, item in value.items():
                bad = _UNSTORABLE.search(key)
                if bad:
                    return path, _message(bad.group())
                stack.append((item, f"{path}.{key}" if path else key))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(value))
    return None


def unstorable_error(obj: object, *, name: str = "the value") -> str | None:
    """``unstorable_at`` as one sentence (``name`` stands for the top level), or None."""
    found = unstorable_at(obj)
    if found is None:
        return None
    path, message = found
    return f"{path or name} {message}"


def _no_constant(name: str) -> float:
    raise UnsafeJSON(f"{name} is not a JSON number and cannot be stored")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnsafeJSON(f"{text[:40]} is too large a number and cannot be stored")
    return value


def json_loads_finite(raw: str | bytes) -> object:
    """``json.loads`` that raises ``UnsafeJSON`` for NaN, Infinity, -Infinity and numbers beyond a
    float (1e999): PostgreSQL's jsonb cannot hold them (the insert would fail); and for an integer
    longer than Python reads (``sys.get_int_max_str_digits()``, 4300 digits), where ``json.loads``
    raises a bare ``ValueError``. Bytes are decoded strictly (UTF-8, -16 or -32, as ``json.loads``
    detects): ``json.loads`` itself decodes with ``surrogatepass``, reading a surrogate written as
    UTF-8 bytes (``ED A0 80``, not UTF-8) as an unpaired surrogate; here it is a
    ``UnicodeDecodeError``, like any other byte that is not text."""
    if isinstance(raw, bytes | bytearray):
        raw = raw.decode(json.detect_encoding(raw))
    try:
        return json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except json.JSONDecodeError:
        raise
    except ValueError:  # int(): "Exceeds the limit (4300 digits) for integer string conversion"
        raise UnsafeJSON(
            f"a number has more than {sys.get_int_max_str_digits()} digits and cannot be read"
        ) from None


def json_loads_safe(raw: str | bytes, *, name: str = "the value") -> object:
    """``json.loads`` that raises ``UnsafeJSON`` (a ``JSONDecodeError``) for deep nesting or text
    or numbers that cannot be stored (``name``: what the top level is called in the message)."""
    try:
        value = json_loads_finite(raw)
    except RecursionError:
        raise UnsafeJSON(NESTED_TOO_DEEPLY) from None
    error = unstorable_error(value, name=name)
    if error is not None:
        raise UnsafeJSON(error)
    return value


MAX_ID = 2**63 - 1  # a bigint primary key


def id_from_text(text: str) -> int | None:
    """The database id ``text`` spells (ASCII digits, 1 to 2**63-1), or None. ``str.isdigit``
    also accepts "²" and Arabic-Indic digits, which ``int`` then refuses or reads as another number."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None
