"""OpenAPI pieces every API module shares (kept apart from ``core.api``, which DRF imports while
``rest_framework.generics`` is still loading).

- :func:`paginated`: the page envelope ``{"count", "next", "previous", "results"}`` around a
  serializer, for views that page through ``core.api.paginated_response`` (generic list views get
  it from drf-spectacular on their own);
- :data:`PAGE_PARAMETERS`: their ``limit`` and ``offset`` query parameters;
- :class:`JobStatusSerializer`: the fields every background job's status shares
  (``core.jobs.job_status_payload``);
- :func:`errors`: the error responses an operation documents, all in the core error schema;
- :func:`document_operation`: documents one method of a view from its class attributes
  (``<prefix>_summary``, ``<prefix>_description``, ``<prefix>_operation_id``), for the bases whose
  subclasses declare their documentation (``core.api_lists``, ``core.api_actions``).

Summaries, descriptions and tags are written on each view with ``extend_schema``; docstrings never
reach the document (``DISABLE_DOCSTRING_DESCRIPTIONS``).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view, inline_serializer
from rest_framework import serializers

from core.api import ErrorSerializer
from core.jobs import JobState

PAGE_PARAMETERS = [
    OpenApiParameter(
        "limit",
        OpenApiTypes.INT,
        description="How many results per page: at least 1 (default 50; more than 1000 is capped at "
        "1000). Not a whole number of at least 1: 400.",
    ),
    OpenApiParameter(
        "offset",
        OpenApiTypes.INT,
        description="Where the page starts (0 is the first result). Negative or not a number: 400.",
    ),
]


@cache
def paginated(serializer_class: type[serializers.Serializer]) -> serializers.Serializer:
    """The page envelope around ``serializer_class`` (one component per serializer)."""
    name = serializer_class.__name__.removesuffix("Serializer")
    return inline_serializer(
        f"Paginated{name}List",
        fields={
            "count": serializers.IntegerField(help_text="Results in all pages."),
            "next": serializers.URLField(allow_null=True, help_text="The next page, or null."),
            "previous": serializers.URLField(allow_null=True, help_text="The previous page, or null."),
            "results": serializer_class(many=True),
        },
    )


def errors(*codes: int) -> dict[int, type[ErrorSerializer]]:
    """Responses for ``codes`` (default 400, 401, 403, 404), each in the core error schema."""
    return dict.fromkeys(codes or (400, 401, 403, 404), ErrorSerializer)


def document_operation(view: type, method: str, prefix: str, **schema: Any) -> None:
    """Documents ``view``'s ``method`` (``"get"``, ``"post"``) with its summary, description and
    operation id, the class attributes ``<prefix>_summary``, ``<prefix>_description`` and
    ``<prefix>_operation_id`` (None: drf-spectacular names it), and ``schema`` (``request``,
    ``parameters``, ``responses``) as ``extend_schema`` takes them."""
    operation = extend_schema(
        summary=getattr(view, f"{prefix}_summary"),
        description=getattr(view, f"{prefix}_description"),
        operation_id=getattr(view, f"{prefix}_operation_id"),
        **schema,
    )
    extend_schema_view(**{method: operation})(view)


class JobStatusSerializer(serializers.Serializer):
    """Documents ``core.jobs.job_status_payload``: the lifecycle fields of every background job."""

    id = serializers.IntegerField()
    state = serializers.ChoiceField(choices=JobState.choices)
    active = serializers.BooleanField(help_text="Queued or running.")
    finished = serializers.BooleanField(help_text="Done, failed or cancelled.")
    error = serializers.CharField(allow_blank=True, help_text="Why it failed (empty otherwise).")
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
