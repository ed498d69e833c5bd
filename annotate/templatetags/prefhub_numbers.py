"""Number formats the report and review pages share."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def seconds(milliseconds) -> str:
    """A time in milliseconds as seconds people read: one decimal under 10 s ("0.4 s", "3.2 s"),
    whole seconds above ("12 s"); empty for no value. (``widthratio`` rounded 400 ms to "0 s".)"""
    if milliseconds is None or milliseconds == "":
        return ""
    value = float(milliseconds) / 1000
    return f"{value:.1f} s" if value < 9.95 else f"{round(value)} s"
