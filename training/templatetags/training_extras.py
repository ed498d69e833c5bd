"""Template helpers of the training pages."""

from __future__ import annotations

from typing import Any

from django import template
from django.template.defaultfilters import floatformat

from training.models import Export
from training.selectors import export_warnings, run_summary

register = template.Library()


@register.filter(name="run_summary")
def run_summary_filter(final: dict[str, Any] | None) -> dict[str, list[tuple[str, Any]]]:
    """``{% with summary=final|run_summary %}``: the final metrics under readable names."""
    return run_summary(final or {})


@register.filter(name="metric_value")
def metric_value(value: Any) -> str:
    """A final figure as the summary shows it: up to 4 decimals ("0.6250", "81.2000", "0"), and a
    value under 0.001 (as the charts do) in 3 significant digits ("3e-05", "-2e-05"), not "0.0000"."""
    if isinstance(value, float) and value != 0 and abs(value) < 1e-3:
        return f"{value:.3g}"
    return floatformat(value, "-4")


@register.filter(name="export_warnings")
def export_warnings_filter(export: Export) -> list[str]:
    """``{% for w in export|export_warnings %}``: what to know before training on it."""
    return export_warnings(export=export)
