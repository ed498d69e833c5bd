"""Template filters of the generation pages."""

import json

from django import template

register = template.Library()


@register.filter
def as_json(value) -> str:
    """Settings as compact JSON (autoescaped by the template like any string)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)
