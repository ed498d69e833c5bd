"""The project sub-navigation, for every page that has a ``project`` in its context (the
annotate pages, and the reports, generation and training pages built beside them)."""

from __future__ import annotations

from django import template

from annotate.models import Project
from core.access import nav_flags, roles_in

register = template.Library()

_AREAS = ("reports", "generation", "training")


@register.inclusion_tag("annotate/_project_nav.html", takes_context=True)
def project_nav(context) -> dict:
    project = context.get("project")
    request = context.get("request")
    if not isinstance(project, Project) or request is None:
        return {"project": None}
    roles = roles_in(request.user, project)
    active = context.get("active_tab") or next(
        (area for area in _AREAS if request.path.startswith(f"/{area}/")), ""
    )
    return {
        "project": project,
        "active_tab": active,
        **nav_flags(roles),
    }
