"""REST API for exports: create (queued for the worker), list, retrieve, download."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from annotate.errors import ServiceError, found
from annotate.models import Project
from annotate.throttles import WriteScopedRateThrottle
from core.access import ProjectApiView
from core.api import validated_input
from core.api_lists import ProjectListCreateApi
from core.api_schema import errors
from training import selectors
from training.formats import FILE_TYPES
from training.models import Export, ExportFormat
from training.services.exports import (
    export_create,
    export_file_path,
    export_files,
    export_option_defaults,
    export_options_help,
    export_zip_path,
)


class ExportSerializer(serializers.ModelSerializer):
    project = serializers.CharField(source="project.slug", read_only=True)
    created_by = serializers.CharField(
        source="created_by.username", read_only=True, default=None, allow_null=True
    )
    files = serializers.SerializerMethodField()

    class Meta:
        model = Export
        fields = [
            "project", "version", "format", "file_type", "options", "state", "row_count", "content_hash",
            "manifest", "error", "files", "created_by", "created_at", "finished_at",
        ]  # fmt: skip

    def get_files(self, obj: Export) -> list[str]:
        try:
            return export_files(export=obj)
        except ServiceError:  # not finished, or its files are gone
            return []


class ExportCreateSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=ExportFormat.values)
    file_type = serializers.ChoiceField(choices=FILE_TYPES, default="jsonl")
    options = serializers.DictField(required=False, default=dict, help_text=export_options_help())


def _export(project, version: int) -> Export:
    return found(selectors.export_get(project=project, version=version), "No such export.")


@extend_schema(tags=["Exports"])
@extend_schema_view(
    get=extend_schema(
        summary="List exports",
        description="Researchers. The project's exports, newest version first, with their state, row "
        "count, manifest and files.",
        responses={200: ExportSerializer, **errors(401, 403, 404)},
    )
)
class ExportListCreateApi(ProjectListCreateApi):
    """A project's exports, newest first; POST queues a new one (the worker fills it)."""

    capability = "research"
    throttle_classes = [WriteScopedRateThrottle]
    throttle_scope = "export"

    serializer_class = ExportSerializer
    create_input = ExportCreateSerializer
    create_summary = "Build an export"
    create_description = (
        "Researchers. Queues a new version of the project's preference dataset in `format` "
        "(TRL, HH-RLHF, OpenAI, ...); the worker compiles it from the labels with `options` "
        "(aggregation, ties, agreement filters, test split; options left out take their defaults, the "
        f"same as on the export page, so {export_option_defaults()['test_size']:.0%} of the prompts are held "
        "out as the test split unless `test_size` says otherwise). Poll the export until `state` is `done`."
    )
    create_errors = (400, 401, 403, 404, 429)
    create_validated = staticmethod(validated_input)

    def rows(self, project: Project) -> QuerySet[Export]:
        return (
            Export.objects.filter(project=project)
            .select_related("project", "created_by")
            .order_by("-version")
        )

    def create(self, project: Project, data: dict, actor) -> Export:
        return export_create(project=project, actor=actor, **data)


@extend_schema(tags=["Exports"])
class ExportDetailApi(ProjectApiView):
    capability = "research"

    @extend_schema(
        summary="Read an export",
        description="Researchers. One export version: state, row count, content hash, manifest and files.",
        responses={200: ExportSerializer, **errors(401, 403, 404)},
    )
    def get(self, request: Request, slug: str, version: int) -> Response:
        return Response(ExportSerializer(_export(self.access.project, version)).data)


@extend_schema(tags=["Exports"])
class ExportDownloadApi(ProjectApiView):
    """The whole export as a zip (409 while it is not finished)."""

    capability = "research"

    @extend_schema(
        summary="Download an export (zip)",
        description="Researchers. Every file of a finished export in one zip (409 while it is not finished).",
        responses={(200, "application/zip"): OpenApiTypes.BINARY, **errors(401, 403, 404, 409)},
    )
    def get(self, request: Request, slug: str, version: int):
        export = _export(self.access.project, version)
        path = export_zip_path(export=export)
        return FileResponse(open(path, "rb"), as_attachment=True, filename=f"{slug}-v{version}.zip")


@extend_schema(tags=["Exports"])
class ExportFileApi(ProjectApiView):
    """One file of the export (a data file, manifest.json or README.md)."""

    capability = "research"

    @extend_schema(
        summary="Download one export file",
        description="Researchers. One file of a finished export, named as in its `files`: a data file, "
        "`manifest.json` or `README.md` (409 while it is not finished).",
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, **errors(401, 403, 404, 409)},
    )
    def get(self, request: Request, slug: str, version: int, name: str):
        export = _export(self.access.project, version)
        path = export_file_path(export=export, name=name)
        return FileResponse(open(path, "rb"), as_attachment=True, filename=f"{slug}-v{version}-{name}")
