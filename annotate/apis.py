"""REST API (DRF) for projects, guidelines, imports, tasks and annotations (error schema,
exception handler and pagination: ``core.api``).

Access: every endpoint names the capability it needs and ``core.access.ProjectPermission`` checks
it (roles and the token's project scope, in one place). Outsiders get 404 (the project's existence
is not revealed), members without the capability 403.
"""

from __future__ import annotations

import logging

from django.db.models import Count, F, Prefetch, QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from annotate.errors import NotFound
from annotate.models import Annotation, Guideline, Project, Task, TaskCandidate
from annotate.services.imports import FORMATS as IMPORT_FORMATS
from annotate.services.imports import prompts_import
from annotate.services.tasks import PairMode
from annotate.throttles import WriteScopedRateThrottle
from annotate.uploads import (
    RAW_IMPORT_TYPES,
    import_body_stream,
    import_size_limit_check,
    import_size_limit_install,
)
from core.access import ProjectApiView, ProjectPermission, principal_of, visible_projects
from core.api import ERRORS
from core.api_lists import ProjectFilteredListApi

logger = logging.getLogger(__name__)


# --- projects and guidelines ----------------------------------------------------------------------


class ProjectSerializer(serializers.ModelSerializer):
    dimensions = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = [
            "slug", "name", "description", "kind", "overlap", "allow_tie", "allow_both_bad", "strength_scale",
            "ranking_k", "allow_rank_ties", "rating_scale_max", "dimensions", "created_at",
        ]  # fmt: skip

    def get_dimensions(self, obj: Project) -> list[dict]:
        return [{"key": d.key, "label": d.label, "required": d.required} for d in obj.dimensions.all()]


class ProjectListApi(generics.ListAPIView):
    serializer_class = ProjectSerializer

    def get_queryset(self):
        return visible_projects(principal_of(self.request)).prefetch_related("dimensions")


class ProjectDetailApi(ProjectApiView):
    capability = "view"

    @extend_schema(responses={200: ProjectSerializer, **ERRORS})
    def get(self, request: Request, slug: str) -> Response:
        return Response(ProjectSerializer(self.access.project).data)


class GuidelineSerializer(serializers.ModelSerializer):
    class Meta:
        model = Guideline
        fields = ["version", "body", "change_note", "created_at"]


class GuidelineListApi(generics.ListAPIView):
    permission_classes = [ProjectPermission]
    capability = "view"
    serializer_class = GuidelineSerializer

    def get_queryset(self):
        project = self.access.project
        return Guideline.objects.filter(project=project).order_by("-version")


class GuidelineDetailApi(ProjectApiView):
    capability = "view"

    @extend_schema(responses={200: GuidelineSerializer, **ERRORS})
    def get(self, request: Request, slug: str, version: int) -> Response:
        project = self.access.project
        guideline = Guideline.objects.filter(project=project, version=version).first()
        if guideline is None:
            raise NotFound("No such guideline version.")
        return Response(GuidelineSerializer(guideline).data)


# --- imports --------------------------------------------------------------------------------------


class ImportOptionsSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=IMPORT_FORMATS, default="auto")
    task_mode = serializers.ChoiceField(choices=PairMode.values, required=False)
    pairs_per_prompt = serializers.IntegerField(min_value=1, max_value=10_000, required=False)
    seed = serializers.IntegerField(min_value=0, max_value=2**31, default=0)
    preference_source = serializers.CharField(max_length=100, required=False)
    skip_invalid = serializers.BooleanField(default=False)


class ImportRequestSerializer(ImportOptionsSerializer):
    file = serializers.FileField(help_text="JSONL (the project's format) or HH-RLHF, plain or gzip.")


class ImportReportSerializer(serializers.Serializer):
    format = serializers.CharField()
    lines = serializers.IntegerField()
    prompts = serializers.IntegerField()
    candidates = serializers.IntegerField()
    tasks = serializers.IntegerField()
    annotations = serializers.IntegerField()
    skipped_lines = serializers.IntegerField()
    committed = serializers.BooleanField()
    errors = serializers.ListField(child=serializers.DictField())
    truncated_errors = serializers.BooleanField()


class PromptImportApi(ProjectApiView):
    """Import prompts and candidates (and recorded preferences) from a file. Atomic unless
    ``skip_invalid``; a bad file answers 400 with the per-line report in ``details``.

    Two ways to send the file: a multipart form (field ``file``, options as form fields), or the
    file itself as the body (``Content-Type: application/x-ndjson`` or ``application/gzip``, options
    in the query string, e.g. ``?skip_invalid=true&filename=prompts.jsonl``), which is imported as
    it arrives, without a temporary file."""

    capability = "import"
    throttle_classes = [WriteScopedRateThrottle]
    throttle_scope = "import"

    parser_classes = [MultiPartParser, FormParser]

    def initialize_request(self, request, *args, **kwargs):
        import_size_limit_install(request)  # before anything reads the body
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(request=ImportRequestSerializer, responses={201: ImportReportSerializer, **ERRORS})
    def post(self, request: Request, slug: str) -> Response:
        project = self.access.project
        if request.content_type.split(";")[0].strip().lower() in RAW_IMPORT_TYPES:
            ser = ImportOptionsSerializer(data=request.query_params)
            ser.is_valid(raise_exception=True)
            data = ser.validated_data
            stream = import_body_stream(request._request)
            filename = request.query_params.get("filename", "")[:200]
        else:
            request.data  # noqa: B018 - parse the upload now, so the size limit can answer first
            import_size_limit_check(request._request)
            ser = ImportRequestSerializer(data=request.data)
            ser.is_valid(raise_exception=True)
            data = ser.validated_data
            upload = data["file"]
            stream = upload.file if hasattr(upload, "file") else upload
            filename = getattr(upload, "name", "") or ""
        report = prompts_import(
            project=project,
            stream=stream,
            fmt=data["format"],
            task_mode=data.get("task_mode"),
            pairs_per_prompt=data.get("pairs_per_prompt"),
            seed=data["seed"],
            preference_source=data.get("preference_source"),
            skip_invalid=data["skip_invalid"],
            actor=request.user,
            filename=filename,
        )
        return Response(report.as_dict(), status=status.HTTP_201_CREATED)


# --- tasks and annotations ----------------------------------------------------------------------------


class TaskSerializer(serializers.ModelSerializer):
    prompt_id = serializers.IntegerField()
    prompt_external_id = serializers.CharField(source="prompt.external_id")
    candidate_ids = serializers.SerializerMethodField()
    annotations = serializers.IntegerField(source="n_annotations", read_only=True)

    class Meta:
        model = Task
        fields = [
            "id", "prompt_id", "prompt_external_id", "candidate_ids", "target_labels", "claims", "annotations",
            "is_gold", "gold_choice", "gold_ranking", "created_at",
        ]  # fmt: skip

    def get_candidate_ids(self, obj: Task) -> list[int]:
        return [s.candidate_id for s in obj.slots.all()]


class TaskFilterSerializer(serializers.Serializer):
    is_gold = serializers.BooleanField(required=False, allow_null=True, default=None)
    open = serializers.BooleanField(
        required=False, allow_null=True, default=None, help_text="Only tasks with a free slot."
    )


class TaskListApi(ProjectFilteredListApi):
    """A project's tasks (researchers)."""

    serializer_class = TaskSerializer
    filter_serializer = TaskFilterSerializer

    def rows(self, project: Project, filters: dict) -> QuerySet[Task]:
        qs = Task.objects.filter(project=project)
        if filters.get("is_gold") is not None:
            qs = qs.filter(is_gold=filters["is_gold"])
        if filters.get("open") is True:
            qs = qs.filter(claims__lt=F("target_labels"))
        elif filters.get("open") is False:
            qs = qs.filter(claims__gte=F("target_labels"))
        return (
            qs.select_related("prompt")
            .prefetch_related(Prefetch("slots", queryset=TaskCandidate.objects.order_by("slot")))
            .annotate(n_annotations=Count("annotations"))
            .order_by("id")
        )


class AnnotationSerializer(serializers.ModelSerializer):
    task_id = serializers.IntegerField()
    labeler_id = serializers.IntegerField()
    guideline_version = serializers.IntegerField(source="guideline.version", allow_null=True, default=None)

    class Meta:
        model = Annotation
        fields = [
            "id", "task_id", "labeler_id", "source", "choice", "ranking", "strength", "ratings", "rationale",
            "flagged", "flag_reason", "shown_order", "guideline_version", "time_spent_ms", "created_at",
        ]  # fmt: skip


class AnnotationFilterSerializer(serializers.Serializer):
    task = serializers.IntegerField(required=False, min_value=1, max_value=2**62)
    labeler = serializers.IntegerField(required=False, min_value=1, max_value=2**62, help_text="User id.")
    since = serializers.DateTimeField(
        required=False, help_text="Only annotations created at or after this time (ISO 8601)."
    )


class AnnotationListApi(ProjectFilteredListApi):
    """A project's annotations, read only (researchers), oldest first."""

    serializer_class = AnnotationSerializer
    filter_serializer = AnnotationFilterSerializer

    def rows(self, project: Project, filters: dict) -> QuerySet[Annotation]:
        qs = Annotation.objects.filter(task__project=project)
        if "task" in filters:
            qs = qs.filter(task_id=filters["task"])
        if "labeler" in filters:
            qs = qs.filter(labeler_id=filters["labeler"])
        if "since" in filters:
            qs = qs.filter(created_at__gte=filters["since"])
        return qs.select_related("guideline").order_by("created_at", "id")
