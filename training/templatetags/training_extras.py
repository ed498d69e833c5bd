"""Template helpers of the training pages."""

from __future__ import annotations

from typing import Any

from django import template

from training.models import Export
from training.selectors import export_warnings, run_summary

register = template.Library()


@register.filter(name="run_summary")
def run_summary_filter(final: dict[str, Any] | None) -> dict[str, list[tuple[str, Any]]]:
    """``{% with summary=final|run_summary %}``: the final metrics under readable names."""
    return run_summary(final or {})


@register.filter(name="export_warnings")
def export_warnings_filter(export: Export) -> list[str]:
    """``{% for w in export|export_warnings %}``: what to know before training on it."""
    return export_warnings(export=export)
