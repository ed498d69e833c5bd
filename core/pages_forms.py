"""Form fields the pages share (parse input shapes only: the services validate meaning)."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from annotate.validation import UnsafeJSON, json_loads_safe


class JSONObjectField(forms.CharField):
    """A text field whose value is a JSON object: a ``dict``, ``{}`` for empty text.

    The text passes the ``CharField`` checks first (stripped, NUL characters refused), then is read
    by ``annotate.validation.json_loads_safe``. Its refusals, each a message to override through
    ``error_messages`` (``%(error)s`` is the reader's own words): ``unsafe``, JSON that cannot be
    stored (a NUL, a number too large, nesting too deep); ``invalid_json``, not JSON at all;
    ``not_object``, JSON but not an object."""

    default_error_messages = {
        "unsafe": "Not valid JSON: %(error)s.",
        "invalid_json": "Not valid JSON: %(error)s.",
        "not_object": "Give a JSON object.",
    }

    def clean(self, value: Any) -> dict:
        text = super().clean(value)
        if not text:
            return {}
        try:
            parsed = json_loads_safe(text)
        except json.JSONDecodeError as exc:
            code = "unsafe" if isinstance(exc, UnsafeJSON) else "invalid_json"
            raise forms.ValidationError(
                self.error_messages[code], code=code, params={"error": exc.msg}
            ) from None
        if not isinstance(parsed, dict):
            raise forms.ValidationError(self.error_messages["not_object"], code="not_object")
        return parsed
