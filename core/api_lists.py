"""The filtered list every project API listing shares (kept apart from ``core.api``, which DRF
imports while ``rest_framework.generics`` is still loading).

A subclass names its ``filter_serializer`` (the query parameters: validated, a 400 in the error
schema when bad, and documented in the OpenAPI schema from the same serializer) and writes
``rows(project, filters)``; access (``capability``), pagination and the error schema come from
the core."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers

from annotate.models import Project
from core.access import ProjectPermission
from core.api import parse_query


class ProjectFilteredListApi(generics.ListAPIView):
    permission_classes = [ProjectPermission]
    capability = "research"
    filter_serializer: type[serializers.Serializer]

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        extend_schema(parameters=[cls.filter_serializer])(cls)

    def rows(self, project: Project, filters: dict) -> QuerySet:
        raise NotImplementedError

    def get_queryset(self) -> QuerySet:
        return self.rows(self.access.project, parse_query(self.filter_serializer, self.request))
