"""Template helpers of the training pages."""

from __future__ import annotations

from typing import Any

from django import template

from training.selectors import run_summary

register = template.Library()


@register.filter(name="run_summary")
def run_summary_filter(final: dict[str, Any] | None) -> dict[str, list[tuple[str, Any]]]:
    """``{% with summary=final|run_summary %}``: the final metrics under readable names."""
    return run_summary(final or {})
