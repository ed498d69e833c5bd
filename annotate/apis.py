"""REST API (DRF) for projects, guidelines, imports, tasks and annotations (error schema,
exception handler and pagination: ``core.api``).

Access: every endpoint names the capability it needs and ``core.access.ProjectPermission`` checks
it (roles and the token's project scope, in one place). Outsiders get 404 (the project's existence
is not revealed), members without the capability 403.
"""

from __future__ import annotations

import logging

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from annotate import selectors
from annotate.errors import found
from annotate.models import (
    Annotation,
    Dimension,
    Guideline,
    Project,
    Task,
    TaskKind,
)
from annotate.project_input import project_start_values
from annotate.services.guidelines import MAX_GUIDELINE_CHARS, guideline_publish
from annotate.services.imports import FORMATS as IMPORT_FORMATS
from annotate.services.imports import SEVERAL_FILES, prompts_import
from annotate.services.projects import (
    DIMENSION_DESCRIPTION_MAX,
    DIMENSION_KEY_MAX,
    DIMENSION_LABEL_MAX,
    MAX_DIMENSIONS,
    project_start,
)
from annotate.services.tasks import PairMode
from annotate.throttles import WriteScopedRateThrottle
from annotate.uploads import (
    RAW_IMPORT_TYPES,
    import_body_stream,
    import_size_limit_check,
    import_size_limit_install,
)
from core.access import (
    ProjectApiView,
    ProjectCreatePermission,
    principal_of,
    visible_projects,
)
from core.api import validated_input
from core.api_lists import ProjectFilteredListApi, ProjectListCreateApi
from core.api_schema import errors

logger = logging.getLogger(__name__)


# --- projects and guidelines ----------------------------------------------------------------------


class DimensionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Dimension
        fields = ["key", "label", "description", "required"]


class ProjectSerializer(serializers.ModelSerializer):
    dimensions = DimensionSerializer(many=True, read_only=True)

    class Meta:
        model = Project
        fields = [
            "slug", "name", "description", "kind", "overlap", "lease_ttl_seconds", "allow_tie", "allow_both_bad",
            "strength_scale", "ranking_k", "allow_rank_ties", "rating_scale_max", "dimensions", "created_at",
        ]  # fmt: skip


class DimensionInputSerializer(serializers.Serializer):
    label = serializers.CharField(
        max_length=DIMENSION_LABEL_MAX, help_text="What labelers rate, e.g. Helpfulness."
    )
    key = serializers.SlugField(
        max_length=DIMENSION_KEY_MAX,
        required=False,
        allow_blank=True,
        default="",
        help_text="Name in exports; from the label.",
    )
    description = serializers.CharField(
        max_length=DIMENSION_DESCRIPTION_MAX,
        required=False,
        allow_blank=True,
        default="",
        help_text="Shown to labelers.",
    )
    required = serializers.BooleanField(default=False, help_text="Labelers must rate it to submit.")


class ProjectCreateSerializer(serializers.Serializer):
    """The fields and bounds of the page /projects/new/ (``ProjectStartForm``; a test keeps them equal)."""

    name = serializers.CharField(max_length=200, help_text="Its address (slug) is made from the name.")
    kind = serializers.ChoiceField(
        choices=TaskKind.choices,
        default=TaskKind.PAIRWISE,
        help_text="pairwise: labelers compare two responses (A/B); ranking: they order K responses.",
    )
    description = serializers.CharField(required=False, allow_blank=True, default="", help_text="Markdown.")
    ranking_k = serializers.IntegerField(
        min_value=2, max_value=16, default=4, help_text="Responses per ranking task (ranking projects)."
    )
    overlap = serializers.IntegerField(
        min_value=1, max_value=100, default=1, help_text="Labelers per task; 2 or more to measure agreement."
    )
    lease_minutes = serializers.IntegerField(
        min_value=1, max_value=24 * 60, default=15, help_text="Minutes a labeler holds a task."
    )
    allow_tie = serializers.BooleanField(default=True, help_text="Pairwise projects: offer “tie”.")
    allow_both_bad = serializers.BooleanField(default=True, help_text="Pairwise projects: offer “both bad”.")
    strength_scale = serializers.BooleanField(
        default=True, help_text="Pairwise projects: ask how much better."
    )
    allow_rank_ties = serializers.BooleanField(default=False, help_text="Ranking projects: allow ties.")
    rating_scale_max = serializers.IntegerField(
        min_value=2, max_value=10, default=5, help_text="Dimension ratings run from 1 to this."
    )
    dimensions = DimensionInputSerializer(many=True, required=False, default=list, max_length=MAX_DIMENSIONS)
    guidelines = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=MAX_GUIDELINE_CHARS,
        help_text="Markdown; published as version 1 when given.",
    )


@extend_schema(tags=["Projects"])
@extend_schema_view(
    get=extend_schema(
        summary="List your projects",
        description="The projects you are an active member of (all of them for site admins), within "
        "your token's projects when it is narrowed to some.",
        responses={200: ProjectSerializer, **errors(401)},
    )
)
class ProjectListApi(generics.ListAPIView):
    permission_classes = [ProjectCreatePermission]
    serializer_class = ProjectSerializer

    def get_queryset(self):
        return visible_projects(principal_of(self.request)).prefetch_related("dimensions")

    @extend_schema(
        summary="Start a project",
        description="The same as the *New project* page: an A/B or ranking project with its settings, "
        "rating dimensions and, when `guidelines` is given, guidelines version 1. You become its "
        "manager. Site staff may start projects (everyone, when the site allows it); never through a "
        "token narrowed to some projects. A name whose address is taken answers 409.",
        request=ProjectCreateSerializer,
        responses={201: ProjectSerializer, **errors(400, 401, 403, 409)},
    )
    def post(self, request: Request) -> Response:
        data = validated_input(ProjectCreateSerializer, request.data)
        project = project_start(
            actor=request.user,
            name=data["name"],
            kind=data["kind"],
            dimensions=[dict(d) for d in data["dimensions"]],
            guidelines=data["guidelines"],
            **project_start_values(data),
        )
        project = Project.objects.prefetch_related("dimensions").get(pk=project.pk)
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["Projects"])
class ProjectDetailApi(ProjectApiView):
    capability = "view"

    @extend_schema(
        summary="Read a project",
        description="Its settings and rating dimensions (any member).",
        responses={200: ProjectSerializer, **errors(401, 403, 404)},
    )
    def get(self, request: Request, slug: str) -> Response:
        return Response(ProjectSerializer(self.access.project).data)


class GuidelineSerializer(serializers.ModelSerializer):
    class Meta:
        model = Guideline
        fields = ["version", "body", "change_note", "created_at"]


class GuidelinePublishSerializer(serializers.Serializer):
    body = serializers.CharField(max_length=MAX_GUIDELINE_CHARS, help_text="The whole text, in Markdown.")
    change_note = serializers.CharField(
        max_length=300,
        required=False,
        allow_blank=True,
        default="",
        help_text="What changed; shown to labelers when they acknowledge the new version.",
    )


@extend_schema(tags=["Guidelines"])
@extend_schema_view(
    get=extend_schema(
        summary="List guideline versions",
        description="Every version of the project's guidelines, newest (the current one) first (any member).",
        responses={200: GuidelineSerializer, **errors(401, 403, 404)},
    )
)
class GuidelineListApi(ProjectListCreateApi):
    capability = "view"
    method_capabilities = {"POST": "manage"}
    serializer_class = GuidelineSerializer
    create_input = GuidelinePublishSerializer
    create_summary = "Publish a new guideline version"
    create_description = (
        "Managers. The new version becomes the current one; labelers acknowledge it before "
        "their next submission. A body identical to the current version's is refused (400)."
    )
    create_validated = staticmethod(validated_input)

    def rows(self, project: Project) -> QuerySet[Guideline]:
        return Guideline.objects.filter(project=project).order_by("-version")

    def create(self, project: Project, data: dict, actor) -> Guideline:
        return guideline_publish(project=project, actor=actor, **data)


@extend_schema(tags=["Guidelines"])
class GuidelineDetailApi(ProjectApiView):
    capability = "view"

    @extend_schema(
        summary="Read a guideline version",
        description="One version's Markdown text and change note (any member).",
        responses={200: GuidelineSerializer, **errors(401, 403, 404)},
    )
    def get(self, request: Request, slug: str, version: int) -> Response:
        project = self.access.project
        guideline = found(
            Guideline.objects.filter(project=project, version=version).first(), "No such guideline version."
        )
        return Response(GuidelineSerializer(guideline).data)


# --- imports --------------------------------------------------------------------------------------


class ImportOptionsSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=IMPORT_FORMATS, default="auto")
    task_mode = serializers.ChoiceField(choices=PairMode.values, required=False)
    pairs_per_prompt = serializers.IntegerField(min_value=1, max_value=10_000, required=False)
    seed = serializers.IntegerField(min_value=0, max_value=2**31, default=0)
    preference_source = serializers.CharField(max_length=100, required=False)
    skip_invalid = serializers.BooleanField(default=False)


class _Several(int):
    """How many files came under one field name that takes one."""


@extend_schema_field({"type": "string", "format": "binary"})
class UploadField(serializers.FileField):
    """A file field documented as a file (the docs page offers a file picker), not as a URI. Two
    files under its name are refused: which one to import would be a guess."""

    default_error_messages = {"several": SEVERAL_FILES}

    def get_value(self, dictionary):
        count = len(dictionary.getlist(self.field_name)) if hasattr(dictionary, "getlist") else 1
        return _Several(count) if count > 1 else super().get_value(dictionary)

    def to_internal_value(self, data):
        if isinstance(data, _Several):
            self.fail("several", count=int(data))
        return super().to_internal_value(data)


class ImportRequestSerializer(ImportOptionsSerializer):
    file = UploadField(help_text="JSONL (the project's format) or HH-RLHF, plain or gzip.")


class ImportQuerySerializer(ImportOptionsSerializer):
    """The query string of a raw-body import: the options, and the file's name for the report."""

    filename = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Raw body only: the file's name, for the import's record (its first 200 characters are kept).",
    )


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


@extend_schema(tags=["Imports"])
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

    # A form (urlencoded) cannot carry a file; the raw body is read before any parser runs.
    parser_classes = [MultiPartParser]

    def initialize_request(self, request, *args, **kwargs):
        import_size_limit_install(request)  # before anything reads the body
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(
        summary="Import prompts and responses",
        description="Managers and researchers. Upload a JSONL file (one prompt per line, with its "
        "candidate responses and optionally recorded preferences) or HH-RLHF data, plain or gzip, as "
        "`multipart/form-data` (field `file`, options as form fields). The whole file is imported or "
        "nothing is, unless `skip_invalid`; a bad file answers 400 with the per-line report in "
        "`details`, a file over the size limit 413, another content type 415. The file may also be sent "
        f"as the body itself (`Content-Type`: {', '.join(f'`{t}`' for t in RAW_IMPORT_TYPES)}), with "
        "the options (and `filename`) in the query string, imported as it arrives; the query "
        "parameters apply to that mode only.",
        request={
            "multipart/form-data": ImportRequestSerializer,
            **dict.fromkeys(RAW_IMPORT_TYPES, OpenApiTypes.BINARY),
        },
        parameters=[ImportQuerySerializer],
        responses={201: ImportReportSerializer, **errors(400, 401, 403, 404, 413, 415, 429)},
    )
    def post(self, request: Request, slug: str) -> Response:
        project = self.access.project
        if request.content_type.split(";")[0].strip().lower() in RAW_IMPORT_TYPES:
            data = validated_input(ImportQuerySerializer, request.query_params)
            stream = import_body_stream(request._request)
            filename = data.get("filename", "")[:200]
        else:
            request.data  # noqa: B018 - parse the upload now, so the size limit can answer first
            import_size_limit_check(request._request)
            data = validated_input(ImportRequestSerializer, request.data)
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
    claims = serializers.IntegerField(
        source="live_claims",
        read_only=True,
        help_text="Live leases plus submissions; a lease past its expiry no longer counts.",
    )

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


@extend_schema(tags=["Tasks and annotations"])
@extend_schema_view(
    get=extend_schema(
        summary="List tasks",
        description="Researchers. The project's comparison tasks in creation order, with their "
        "candidates, how many labelers each asks for and holds, and gold answers.",
    )
)
class TaskListApi(ProjectFilteredListApi):
    """A project's tasks (researchers)."""

    serializer_class = TaskSerializer
    filter_serializer = TaskFilterSerializer

    def rows(self, project: Project, filters: dict) -> QuerySet[Task]:
        return selectors.tasks_for_listing(
            project=project, is_gold=filters.get("is_gold"), open=filters.get("open")
        )


class AnnotationSerializer(serializers.ModelSerializer):
    task_id = serializers.IntegerField()
    labeler_id = serializers.IntegerField()
    labeler = serializers.CharField(source="labeler.username", read_only=True, help_text="Username.")
    guideline_version = serializers.IntegerField(source="guideline.version", allow_null=True, default=None)
    pre_annotated = serializers.BooleanField(
        read_only=True, help_text="The labeling page preselected an AI judge's verdict for this labeler."
    )

    class Meta:
        model = Annotation
        fields = [
            "id", "task_id", "labeler_id", "labeler", "source", "choice", "ranking", "strength", "ratings", "rationale",
            "flagged", "flag_reason", "shown_order", "guideline_version", "time_spent_ms", "pre_annotated",
            "created_at",
        ]  # fmt: skip


class AnnotationFilterSerializer(serializers.Serializer):
    task = serializers.IntegerField(required=False, min_value=1, max_value=2**62)
    labeler = serializers.CharField(
        required=False, max_length=150, help_text="A labeler's username, or their user id (`labeler_id`)."
    )
    since = serializers.DateTimeField(
        required=False, help_text="Only annotations created at or after this time (ISO 8601)."
    )


@extend_schema(tags=["Tasks and annotations"])
@extend_schema_view(
    get=extend_schema(
        summary="List annotations",
        description="Researchers. Every judgment, oldest first: choice or ranking, strength, ratings, "
        "rationale and flags, with the guideline version it was made under, the labeler (id and "
        "username; filter with `labeler=USERNAME` or a user id) and `pre_annotated` (the labeling "
        "page preselected an AI judge's verdict for this labeler).",
    )
)
class AnnotationListApi(ProjectFilteredListApi):
    """A project's annotations, read only (researchers), oldest first."""

    serializer_class = AnnotationSerializer
    filter_serializer = AnnotationFilterSerializer

    def rows(self, project: Project, filters: dict) -> QuerySet[Annotation]:
        return selectors.annotations_for_listing(
            project=project,
            task=filters.get("task"),
            labeler=filters.get("labeler"),
            since=filters.get("since"),
        )
