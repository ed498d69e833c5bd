"""``{{ text|markdown }}``: untrusted Markdown rendered to sanitized HTML (annotate.rendering)."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from annotate.rendering import render_markdown

register = template.Library()


@register.simple_tag(takes_context=True)
def can_create_projects(context) -> bool:
    from core.access import can_create_projects as allowed

    request = context.get("request")
    return bool(request is not None and allowed(request.user))


@register.filter(name="markdown")
def markdown_filter(text: str | None) -> SafeString:
    return render_markdown(text)
