"""The API's JSON parser: the body is read by ``annotate.validation.json_loads_safe``, the rule the
pages and imports use, so a body nested too deeply or holding what cannot be stored (a NUL
character, an unpaired surrogate, NaN or an infinite number) is a 400 like any malformed JSON, not
a 500."""

from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from annotate.validation import json_loads_safe


class SafeJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json_loads_safe(stream.read().decode(encoding), name="the body")
        except ValueError as exc:  # JSONDecodeError (UnsafeJSON too) and UnicodeDecodeError
            raise ParseError(f"JSON parse error - {exc}") from None
