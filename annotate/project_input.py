"""What a "start a project" input (the page's form, the API's serializer) hands to ``project_start``: one
reading for both, so the two cannot drift apart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from annotate.models import TaskKind
from annotate.services.projects import KIND_SETTINGS

DEFAULT_RANKING_K = 4


def project_start_values(data: Mapping[str, Any]) -> dict:
    """The settings ``project_start`` takes from validated input: the general ones (the lease in
    minutes becomes seconds) and those of the chosen kind; a ranking project left without K gets
    the default."""
    values = {
        "description": data["description"],
        "overlap": data["overlap"],
        "lease_ttl_seconds": data["lease_minutes"] * 60,
        "rating_scale_max": data["rating_scale_max"],
    }
    if data["kind"] == TaskKind.RANKING:
        data = {**data, "ranking_k": data["ranking_k"] or DEFAULT_RANKING_K}
    values.update({name: data[name] for name in KIND_SETTINGS[data["kind"]]})
    return values
