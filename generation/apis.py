"""REST API for generation (config/api_urls.py includes ``urlpatterns`` under /api/v1/).

    GET  projects/<slug>/generation/endpoints/   endpoints the project may use
    POST projects/<slug>/generation/endpoints/   register one (project-scoped)
    GET  projects/<slug>/generation/jobs/        the project's jobs, newest first
    POST projects/<slug>/generation/jobs/        create a job (enqueued at once)
    GET  generation/jobs/<id>/                   a job's settings, progress, failures and staged summary
    POST generation/jobs/<id>/cancel/            cancel a queued or running job
    POST generation/jobs/<id>/release            {"which": "all"|"passing"|"none"}: create its tasks, once

Reading a job and releasing it need the "release" capability (managers and researchers), every
other call "research"; checked by ``core.access`` (roles and the token's project scope; 404
outside it, 403 for other roles); service errors answer ``{"error", "detail", "field"}`` with their 4xx status.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from annotate.errors import InvalidInput
from annotate.models import Project
from annotate.throttles import WriteScopedRateThrottle
from core.access import ProjectApiView
from core.api import validated_as_service_input
from core.api_actions import ProjectObjectActionApi
from core.api_lists import ProjectPagedListCreateApi
from core.api_schema import JobStatusSerializer, errors
from generation import selectors, services
from generation.models import AutoRelease, Backend, GenerationJob, ModelEndpoint, ReleaseWhich, TaskMode


def endpoint_data(endpoint: ModelEndpoint) -> dict:
    return {
        "id": endpoint.pk,
        "name": endpoint.name,
        "backend": endpoint.backend,
        "model": endpoint.model,
        "config": endpoint.shown_config,
        "default_sampling": endpoint.default_sampling,
        "project": endpoint.project.slug if endpoint.project_id and endpoint.project else None,
        "is_active": endpoint.is_active,
        "created_at": endpoint.created_at.isoformat(),
    }


def job_data(job: GenerationJob, *, with_failures: bool = False) -> dict:
    """A job's payload; the detail (``with_failures``) adds its failures and, once generation
    has ended, the staged summary (per endpoint: candidates, passing, counts per check)."""
    data = {
        "id": job.pk,
        "project": job.project.slug,
        "endpoints": [e.name for e in job.endpoints.all()],
        "k": job.k,
        "prompt_filter": job.prompt_filter,
        "sampling": job.sampling,
        "task_mode": job.task_mode,
        "pairs_per_prompt": job.pairs_per_prompt,
        "batch_size": job.batch_size,
        "auto_release": job.auto_release or None,
        "created_at": job.created_at.isoformat(),
        "created_by": job.created_by.get_username() if job.created_by else None,
        **selectors.job_status(job=job),
    }
    if with_failures:
        data["failures"] = [
            {
                "prompt": f.prompt_id,
                "prompt_external_id": f.prompt.external_id if f.prompt else None,
                "endpoint": f.endpoint.name if f.endpoint else None,
                "message": f.message,
                "attempts": f.attempts,
            }
            for f in selectors.job_failures(job=job, limit=1000)
        ]
        data["staged"] = selectors.job_staged_summary(job=job) if job.job_finished else None
    return data


class EndpointInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    backend = serializers.ChoiceField(choices=Backend.choices)
    model = serializers.CharField(max_length=500)
    config = serializers.DictField(required=False, default=dict)
    default_sampling = serializers.DictField(required=False, default=dict)


class JobInput(serializers.Serializer):
    endpoints = serializers.ListField(
        child=serializers.CharField(max_length=100), min_length=1, max_length=16
    )
    k = serializers.IntegerField(min_value=1, max_value=64, default=2)
    prompt_filter = serializers.DictField(
        required=False,
        default=dict,
        help_text='Which prompts: {"mode": "all"} (default), {"mode": "untagged"}, {"mode": "tag", "tag": "..."} '
        'or {"mode": "ids", "ids": [...]}: the ids of the imported lines (strings such as "q1") or prompt '
        "numbers (whole numbers); the job records them as prompt numbers.",
    )
    sampling = serializers.DictField(required=False, default=dict)
    task_mode = serializers.ChoiceField(
        choices=TaskMode.choices, required=False, allow_null=True, default=None
    )
    pairs_per_prompt = serializers.IntegerField(
        min_value=1, max_value=1000, required=False, allow_null=True, default=None
    )
    batch_size = serializers.IntegerField(
        min_value=1,
        max_value=256,
        required=False,
        allow_null=True,
        default=None,
        help_text="Prompts per worker task; empty: up to 16, and at least 4 batches per endpoint.",
    )
    auto_release = serializers.ChoiceField(
        choices=[(c.value, c.label) for c in AutoRelease if c.value],
        required=False,
        allow_blank=True,
        default="",
        help_text='Left out or empty (default): responses stay staged until released; "passing" or "all": '
        "released when generation ends.",
    )


class ReleaseInput(serializers.Serializer):
    which = serializers.ChoiceField(
        choices=[(ReleaseWhich.ALL, "all"), (ReleaseWhich.PASSING, "passing"), (ReleaseWhich.NONE, "none")],
        help_text='"all", "passing" (candidates failing a check are left out) or "none" (discard).',
    )


# --- response bodies (documentation: ``endpoint_data`` and ``job_data`` build them) ---------------


class EndpointSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(help_text="Jobs name their endpoints by this.")
    backend = serializers.ChoiceField(choices=Backend.choices)
    model = serializers.CharField(help_text="A Hugging Face model name, a local path or the server's model.")
    config = serializers.DictField(help_text="Backend options (server URL, dtype, ...).")
    default_sampling = serializers.DictField(help_text="Sampling defaults (temperature, max_tokens, ...).")
    project = serializers.CharField(allow_null=True, help_text="The project's slug; null: shared by all.")
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class JobFailureSerializer(serializers.Serializer):
    prompt = serializers.IntegerField(allow_null=True, help_text="Prompt id.")
    prompt_external_id = serializers.CharField(allow_null=True)
    endpoint = serializers.CharField(allow_null=True)
    message = serializers.CharField()
    attempts = serializers.IntegerField()


class ReleaseStatusSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=["generating", "staged", "released"])
    auto_release = serializers.CharField(allow_null=True)
    which = serializers.CharField(allow_null=True, help_text='"all", "passing" or "none" once released.')
    released_at = serializers.DateTimeField(allow_null=True)
    released_by = serializers.CharField(allow_null=True)
    released_tasks = serializers.IntegerField()
    excluded_candidates = serializers.IntegerField()


class GenerationJobSerializer(JobStatusSerializer):
    project = serializers.CharField()
    endpoints = serializers.ListField(child=serializers.CharField(), help_text="Endpoint names.")
    k = serializers.IntegerField(help_text="Samples per prompt per endpoint.")
    prompt_filter = serializers.DictField(
        help_text='Which prompts: {"mode": "all" | "untagged" | "tag" | "ids", ...}.'
    )
    sampling = serializers.DictField()
    task_mode = serializers.ChoiceField(choices=TaskMode.choices, allow_null=True)
    pairs_per_prompt = serializers.IntegerField(allow_null=True)
    batch_size = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField(allow_null=True)
    total_units = serializers.IntegerField(help_text="Work units (prompt x endpoint) in all.")
    done_units = serializers.IntegerField()
    failed_units = serializers.IntegerField()
    percent = serializers.IntegerField(help_text="Settled units, in percent.")
    candidates = serializers.IntegerField(help_text="Responses written so far.")
    tasks = serializers.IntegerField(help_text="Tasks created from them.")
    auto_release = serializers.CharField(
        allow_null=True, help_text='null: staged until released; "passing" or "all": released when done.'
    )
    release = ReleaseStatusSerializer(help_text="Where the job's responses are: staged or released.")


class StagedEndpointSerializer(serializers.Serializer):
    endpoint = serializers.CharField()
    model = serializers.CharField()
    candidates = serializers.IntegerField(help_text="Responses this endpoint wrote.")
    passing = serializers.IntegerField(help_text="Of them, those that failed no check.")
    failed = serializers.DictField(
        child=serializers.IntegerField(), help_text="Check name -> responses failing it."
    )


class StagedCheckSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    help = serializers.CharField()


class WouldCreateSerializer(serializers.Serializer):
    candidates = serializers.IntegerField()
    tasks = serializers.IntegerField()


class WouldReleaseSerializer(serializers.Serializer):
    all = WouldCreateSerializer(help_text="What releasing all would create.")
    passing = WouldCreateSerializer(help_text="What releasing the passing ones would create.")


class StagedSummarySerializer(serializers.Serializer):
    endpoints = StagedEndpointSerializer(many=True)
    checks = StagedCheckSerializer(many=True, help_text="The automatic checks, with what each means.")
    unchecked = serializers.IntegerField(help_text="Responses without a check row (written before checks).")
    would_release = WouldReleaseSerializer()


class GenerationJobDetailSerializer(GenerationJobSerializer):
    failures = JobFailureSerializer(many=True, help_text="Prompts that failed, with why (up to 1000).")
    staged = StagedSummarySerializer(
        allow_null=True, help_text="Once generation has ended: checks per model."
    )


@extend_schema(tags=["Generation"])
class EndpointListCreateApi(ProjectPagedListCreateApi):
    capability = "research"
    row_serializer = EndpointSerializer
    list_summary = "List model endpoints"
    list_description = "Researchers. The endpoints this project's jobs may use: its own and the shared ones."
    list_operation_id = "generation_endpoints_list"
    create_input = EndpointInput
    create_summary = "Register a model endpoint"
    create_description = (
        "Researchers. A model this project can generate with: `transformers` (a model name "
        "or a path inside the allowed folders), `vllm`, or `openai` (an OpenAI-compatible server, its "
        "URL in `config`)."
    )
    create_operation_id = "generation_endpoints_create"

    def rows(self, project: Project) -> QuerySet[ModelEndpoint]:
        return selectors.endpoints_for_project(project=project).select_related("project")

    def row_data(self, row: ModelEndpoint) -> dict:
        return endpoint_data(row)

    def create(self, project: Project, data: dict, actor) -> ModelEndpoint:
        return services.endpoint_create(project=project, actor=actor, restrict_paths=True, **data)


@extend_schema(tags=["Generation"])
class JobListCreateApi(ProjectPagedListCreateApi):
    capability = "research"
    throttle_classes = [WriteScopedRateThrottle]
    throttle_scope = "jobs"
    row_serializer = GenerationJobSerializer
    list_summary = "List generation jobs"
    list_description = "Researchers. The project's jobs, newest first, with their progress."
    list_operation_id = "generation_jobs_list"
    create_input = JobInput
    create_summary = "Start a generation job"
    create_description = (
        "Researchers. Samples `k` responses per prompt from each named endpoint, in "
        "batches on the generation queue. The responses are staged with automatic checks until released "
        "(see the release operation) unless `auto_release` is set; released responses become tasks "
        "(`task_mode`, default: the project's kind)."
    )
    create_operation_id = "generation_jobs_create"
    create_errors = (400, 401, 403, 404, 429)

    def rows(self, project: Project) -> QuerySet[GenerationJob]:
        return selectors.jobs_for_project(project=project)

    def row_data(self, row: GenerationJob) -> dict:
        return job_data(row)

    def create(self, project: Project, data: dict, actor) -> GenerationJob:
        names = list(dict.fromkeys(data.pop("endpoints")))
        endpoints = list(selectors.endpoints_for_project(project=project).filter(name__in=names))
        missing = sorted(set(names) - {e.name for e in endpoints})
        if missing:
            raise InvalidInput(f"Unknown endpoint(s): {', '.join(missing)}.", field="endpoints")
        return services.job_create(project=project, endpoints=endpoints, actor=actor, **data)


@extend_schema(tags=["Generation"])
class JobDetailApi(ProjectApiView):
    capability = "release"

    @extend_schema(
        summary="Read a generation job",
        description="Managers and researchers. Its settings, progress, the prompts that failed and, "
        "once generation has ended, its staged responses' checks per model.",
        operation_id="generation_job_detail",
        responses={200: GenerationJobDetailSerializer, **errors(401, 403, 404)},
    )
    def get(self, request: Request, job_id: int) -> Response:
        return Response(job_data(self.job, with_failures=True))


@extend_schema(tags=["Generation"])
class JobCancelApi(ProjectObjectActionApi):
    capability = "research"
    row_serializer = GenerationJobSerializer
    action_summary = "Cancel a generation job"
    action_description = (
        "Researchers. Stops a queued or running job (409 when it has ended): pending "
        "batches are dropped, responses already written stay, no tasks are created."
    )
    action_operation_id = "generation_job_cancel"

    def target(self, job_id: int) -> GenerationJob:
        return self.job  # ProjectPermission found it (404 outside the caller's projects)

    def act(self, obj: GenerationJob, actor) -> GenerationJob:
        return services.job_cancel(job=obj, actor=actor)

    def row_data(self, row: GenerationJob) -> dict:
        return job_data(row)


@extend_schema(tags=["Generation"])
class JobReleaseApi(ProjectApiView):
    capability = "release"

    @extend_schema(
        summary="Release a job's staged responses",
        description="Managers and researchers. Once generation has ended, the responses wait, staged, with their "
        "automatic checks; this turns them into labeling tasks: `all`, only the `passing` ones (a prompt "
        "left with fewer than 2 makes no task) or `none` (discard). Once per job: a second release, or "
        "one before generation has ended, answers 409.",
        operation_id="generation_job_release",
        request=ReleaseInput,
        responses={200: GenerationJobDetailSerializer, **errors(400, 401, 403, 404, 409)},
    )
    def post(self, request: Request, job_id: int) -> Response:
        data = validated_as_service_input(ReleaseInput, request.data)
        job = services.job_release(job=self.job, which=data["which"], actor=request.user)
        return Response(job_data(selectors.job_get(job_id=job.pk), with_failures=True))


urlpatterns = [
    path(
        "projects/<slug:slug>/generation/endpoints/",
        EndpointListCreateApi.as_view(),
        name="generation-api-endpoints",
    ),
    path("projects/<slug:slug>/generation/jobs/", JobListCreateApi.as_view(), name="generation-api-jobs"),
    path("generation/jobs/<int:job_id>/", JobDetailApi.as_view(), name="generation-api-job"),
    path("generation/jobs/<int:job_id>/cancel/", JobCancelApi.as_view(), name="generation-api-job-cancel"),
    path("generation/jobs/<int:job_id>/release", JobReleaseApi.as_view(), name="generation-api-job-release"),
]
