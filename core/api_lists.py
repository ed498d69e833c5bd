"""The project API listings' plumbing (kept apart from ``core.api``, which DRF imports while
``rest_framework.generics`` is still loading). Access (``capability``), pagination, the error
schema and the listing's documented parameters and responses come from here; a subclass names
its serializers, writes how it finds its rows, and documents its summary and description.

- :class:`ProjectFilteredListApi`: a generic list filtered by query parameters. A subclass names
  its ``serializer_class`` and ``filter_serializer`` (the query parameters: validated, a 400 in
  the error schema when bad, and documented from the same serializer) and writes
  ``rows(project, filters)``.
- :class:`ProjectPagedListApi`: a GET that pages through ``rows(project)`` and answers each row as
  ``row_data(row)``; ``row_serializer`` documents one row and, unless ``row_data`` builds the
  payload another way, serializes it; ``list_summary``, ``list_description`` and
  ``list_operation_id`` document the GET.
- :class:`ProjectCreateMixin`: a POST that adds one row to a listing: the body is validated by
  ``create_input`` (a refusal is a 400 naming the field, as the services' are, unless
  ``create_validated`` keeps DRF's own), ``create(project, data, actor)`` makes the row through
  its service, and the answer is the new row as the listing shows it (``row_data``), 201.
  ``create_summary``, ``create_description``, ``create_operation_id`` and ``create_errors``
  document the POST.
- :class:`ProjectPagedListCreateApi`: the paged listing with that POST.
- :class:`ProjectListCreateApi`: a generic list (its ``serializer_class``) of ``rows(project)``
  with that POST."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from annotate.models import Project
from core.access import ProjectApiView, ProjectPermission
from core.api import paginated_response, parse_query, validated_as_service_input
from core.api_schema import PAGE_PARAMETERS, document_operation, errors, paginated


class ProjectFilteredListApi(generics.ListAPIView):
    permission_classes = [ProjectPermission]
    capability = "research"
    filter_serializer: type[serializers.Serializer]

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        extend_schema(parameters=[cls.filter_serializer])(cls)
        extend_schema_view(get=extend_schema(responses={200: cls.serializer_class, **errors()}))(cls)

    def rows(self, project: Project, filters: dict) -> QuerySet:
        raise NotImplementedError

    def get_queryset(self) -> QuerySet:
        return self.rows(self.access.project, parse_query(self.filter_serializer, self.request))


class ProjectPagedListApi(ProjectApiView):
    row_serializer: type[serializers.Serializer]
    list_summary: str
    list_description: str
    list_operation_id: str

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if not hasattr(cls, "row_serializer"):  # a base for other listings (below)
            return
        document_operation(
            cls,
            "get",
            "list",
            parameters=PAGE_PARAMETERS,
            responses={200: paginated(cls.row_serializer), **errors(401, 403, 404)},
        )

    def rows(self, project: Project) -> QuerySet:
        raise NotImplementedError

    def row_data(self, row: Any) -> dict:
        return self.row_serializer(row).data

    def get(self, request: Request, slug: str) -> Response:
        return paginated_response(request, self, self.rows(self.access.project), self.row_data)


class ProjectCreateMixin:
    """The POST that adds one row to a project listing (see the module's docstring)."""

    create_input: type[serializers.Serializer]
    create_summary: str
    create_description: str
    create_operation_id: str | None = None  # None: drf-spectacular names it
    create_errors: tuple[int, ...] = (400, 401, 403, 404)
    # How the body is validated: the services' refusal (a 400 whose detail names the field) unless a
    # view keeps DRF's own (core.api.validated_input).
    create_validated = staticmethod(validated_as_service_input)

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if not hasattr(cls, "create_input"):
            return
        document_operation(
            cls,
            "post",
            "create",
            request=cls.create_input,
            responses={201: cls.created_serializer(), **errors(*cls.create_errors)},
        )

    @classmethod
    def created_serializer(cls) -> type[serializers.Serializer]:
        """What documents the new row (the 201's body): the listing's row serializer."""
        return cls.row_serializer

    def create(self, project: Project, data: dict, actor: Any) -> Any:
        raise NotImplementedError

    def post(self, request: Request, slug: str) -> Response:
        data = dict(self.create_validated(self.create_input, request.data))
        row = self.create(self.access.project, data, request.user)
        return Response(self.row_data(row), status=status.HTTP_201_CREATED)


class ProjectPagedListCreateApi(ProjectCreateMixin, ProjectPagedListApi):
    """A paged listing of ``rows(project)`` and the POST that adds one row."""


class ProjectListCreateApi(ProjectCreateMixin, generics.ListAPIView):
    """A generic list of ``rows(project)``, each row through ``serializer_class``, and the POST
    that adds one row. The GET is documented by the subclass."""

    permission_classes = [ProjectPermission]

    @classmethod
    def created_serializer(cls) -> type[serializers.Serializer]:
        return cls.serializer_class

    def rows(self, project: Project) -> QuerySet:
        raise NotImplementedError

    def get_queryset(self) -> QuerySet:
        return self.rows(self.access.project)

    def row_data(self, row: Any) -> dict:
        return self.serializer_class(row).data
