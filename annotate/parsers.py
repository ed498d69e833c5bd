"""The API's JSON parser: a body nested too deeply, or holding text that cannot be stored (a NUL
character, an unpaired surrogate: ``annotate.validation``), is a 400 like any malformed JSON, not a
500."""

from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from annotate.validation import NESTED_TOO_DEEPLY, unstorable_error


class SafeJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type=media_type, parser_context=parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - {NESTED_TOO_DEEPLY}") from None
        error = unstorable_error(data, name="the body")
        if error is not None:
            raise ParseError(f"JSON parse error - {error}")
        return data
