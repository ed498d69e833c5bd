"""What a new project's form or API body gives ``project_start``: one reading for the page
/projects/new/ (``ProjectStartForm``) and the API (``ProjectCreateSerializer``), so the two cannot
drift apart."""

from __future__ import annotations

from collections.abc import Mapping

from annotate.models import TaskKind
from annotate.services.projects import KIND_SETTINGS


def project_start_values(data: Mapping) -> dict:
    """The settings ``project_start`` takes from validated fields: the general ones and those of
    the chosen kind (a ranking project left without ``ranking_k`` gets 4)."""
    values = {
        "description": data["description"],
        "overlap": data["overlap"],
        "lease_ttl_seconds": data["lease_minutes"] * 60,
        "rating_scale_max": data["rating_scale_max"],
    }
    if data["kind"] == TaskKind.RANKING:
        data = {**data, "ranking_k": data["ranking_k"] or 4}
    values.update({name: data[name] for name in KIND_SETTINGS[data["kind"]]})
    return values
