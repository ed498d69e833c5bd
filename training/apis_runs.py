"""REST API for training runs: create (queued on the training queue), list, status, cancel,
register as a generation endpoint. Included under /api/v1/ by config.api_urls (paths projects/<slug>/runs/...)."""

from __future__ import annotations

from django.db.models import QuerySet
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from annotate.errors import InvalidInput, found
from annotate.models import Project
from annotate.throttles import WriteScopedRateThrottle
from core.access import ProjectApiView
from core.api import validated_input
from core.api_actions import ProjectObjectActionApi
from core.api_lists import ProjectPagedListCreateApi
from core.api_schema import JobStatusSerializer, errors
from training import selectors
from training.models import RunKind, TrainingRun
from training.services.runs import run_cancel, run_create, run_register, run_resume


class RunCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=RunKind.values)
    base_model = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)
    export = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="Export version."
    )
    dataset_path = serializers.CharField(required=False, allow_blank=True, default="", max_length=1000)
    base_run = serializers.IntegerField(required=False, allow_null=True, default=None)
    reward_run = serializers.IntegerField(required=False, allow_null=True, default=None)
    config = serializers.DictField(
        required=False, default=dict, help_text="Runner options (see the run form)."
    )


class RunRegisterSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)


# --- response bodies (documentation: ``training.selectors.run_status`` builds them) -------------


class TrainingRunSerializer(JobStatusSerializer):
    project = serializers.CharField()
    kind = serializers.ChoiceField(choices=RunKind.choices)
    base_model = serializers.CharField(allow_blank=True, help_text="The model it starts from.")
    export = serializers.IntegerField(allow_null=True, help_text="The export version it trains on.")
    dataset_path = serializers.CharField(allow_blank=True)
    base_run = serializers.IntegerField(allow_null=True, help_text="The run whose model it starts from.")
    reward_run = serializers.IntegerField(allow_null=True, help_text="PPO/RL: the reward model's run.")
    config = serializers.DictField(help_text="Runner options.")
    metrics = serializers.DictField(help_text="The latest (and, when done, final) metrics.")
    output_path = serializers.CharField(allow_blank=True, help_text="Where the model is (finished runs).")
    cancel_requested = serializers.BooleanField()
    registered_endpoint = serializers.CharField(
        allow_null=True, help_text="The generation endpoint serving its model, once registered."
    )
    resumed_from = serializers.IntegerField(
        allow_null=True, help_text="The failed or cancelled run whose checkpoint this run continues from."
    )
    resumable_from_step = serializers.IntegerField(
        allow_null=True,
        help_text="A failed or cancelled run's newest checkpoint (the step resuming it continues from); "
        "null when it cannot be resumed.",
    )
    created_at = serializers.DateTimeField(allow_null=True)


class TrainingRunDetailSerializer(TrainingRunSerializer):
    points = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text="With `points=1`: logged metric points, oldest first: `{id, step, <metric>: value, ...}`.",
    )


class RegisteredEndpointSerializer(serializers.Serializer):
    endpoint = serializers.CharField(help_text="The generation endpoint's name.")
    model = serializers.CharField(help_text="The model path it serves.")
    created = serializers.BooleanField(help_text="False when the run was registered before this request.")
    note = serializers.CharField(
        allow_blank=True,
        help_text="When not created: that the existing endpoint is answered and no name was used.",
    )


def _run(project, run_id: int) -> TrainingRun:
    return found(selectors.run_get(project=project, run_id=run_id), "No such run.")


def _project_run(project, run_id: int | None, field: str) -> TrainingRun | None:
    if run_id is None:
        return None
    run = TrainingRun.objects.filter(project=project, pk=run_id).first()
    if run is None:
        raise InvalidInput("No such run in this project.", field=field)
    return run


@extend_schema(tags=["Training runs"])
class RunListCreateApi(ProjectPagedListCreateApi):
    """A project's runs, newest first; POST validates and queues a new one."""

    capability = "research"

    throttle_classes = [WriteScopedRateThrottle]
    throttle_scope = "runs"
    row_serializer = TrainingRunSerializer
    list_summary = "List training runs"
    list_description = "Researchers. The project's runs, newest first, with state and latest metrics."
    list_operation_id = "training_runs_list"
    create_input = RunCreateSerializer
    create_summary = "Start a training run"
    create_description = (
        "Researchers. Validates and queues a run on the training queue: a reward model or "
        "DPO on an export version (or a dataset path), PPO/RLOO/GRPO with a reward run. Runner options "
        "go in `config`."
    )
    create_errors = (400, 401, 403, 404, 429)
    create_validated = staticmethod(validated_input)

    def rows(self, project: Project) -> QuerySet[TrainingRun]:
        return selectors.runs_for_project(project=project)

    def row_data(self, row: TrainingRun) -> dict:
        return selectors.run_status(run=row)

    def create(self, project: Project, data: dict, actor) -> TrainingRun:
        export = None
        if data["export"] is not None:
            export = selectors.export_get(project=project, version=data["export"])
            if export is None:
                raise InvalidInput("No such export version in this project.", field="export")
        return run_create(
            project=project,
            kind=data["kind"],
            base_model=data["base_model"],
            export=export,
            dataset_path=data["dataset_path"],
            base_run=_project_run(project, data["base_run"], "base_run"),
            reward_run=_project_run(project, data["reward_run"], "reward_run"),
            config=data["config"],
            actor=actor,
        )


@extend_schema(tags=["Training runs"])
class RunDetailApi(ProjectApiView):
    """A run's status: state, latest and final metrics, error."""

    capability = "research"

    @extend_schema(
        summary="Read a training run",
        description="Researchers. State, latest and final metrics, error; with `points=1` the logged "
        "metric points too (after the point id `after`, to follow a live run).",
        operation_id="training_runs_retrieve",
        parameters=[
            OpenApiParameter("points", OpenApiTypes.BOOL, description="Include the logged metric points."),
            OpenApiParameter("after", OpenApiTypes.INT, description="Only points after this point id."),
        ],
        responses={200: TrainingRunDetailSerializer, **errors(400, 401, 403, 404)},
    )
    def get(self, request: Request, slug: str, run_id: int) -> Response:
        run = _run(self.access.project, run_id)
        body = selectors.run_status(run=run)
        if request.query_params.get("points"):
            try:
                after = int(request.query_params.get("after", 0))
            except ValueError:
                raise InvalidInput("after must be a metric point id.", field="after") from None
            body["points"] = selectors.run_points(run=run, after_id=after)
        return Response(body)


class RunActionApi(ProjectObjectActionApi):
    """An action on a run of the project (404 for another project's), answered with the run's
    status as the run list shows it."""

    capability = "research"
    row_serializer = TrainingRunSerializer

    def target(self, slug: str, run_id: int) -> TrainingRun:
        return _run(self.access.project, run_id)

    def row_data(self, row: TrainingRun) -> dict:
        return selectors.run_status(run=row)


@extend_schema(tags=["Training runs"])
class RunCancelApi(RunActionApi):
    action_summary = "Cancel a training run"
    action_description = (
        "Researchers. A queued run is cancelled at once; a running one is asked to stop "
        "(409 when it has already ended)."
    )

    def act(self, obj: TrainingRun, actor) -> TrainingRun:
        return run_cancel(run=obj, actor=actor)


@extend_schema(tags=["Training runs"])
class RunResumeApi(RunActionApi):
    throttle_classes = [WriteScopedRateThrottle]
    throttle_scope = "runs"
    action_summary = "Resume a training run from its last checkpoint"
    action_description = (
        "Researchers. Queues a new run that continues a failed or cancelled run from the "
        "newest checkpoint it left (its `resumable_from_step`; runs write "
        "checkpoints when their options set `save_steps`): same model, data and options; weights, "
        "optimiser, schedule and data position are restored and only the remaining steps are "
        "trained. The answer is the new run (`resumed_from` names the old one). "
        "409 for a run that is not failed or cancelled, one that left no checkpoint, one being "
        "resumed or already resumed to the end, or one whose base model, data or reward model is gone."
    )
    action_errors = (401, 403, 404, 409, 429)
    action_status = status.HTTP_201_CREATED

    def act(self, obj: TrainingRun, actor) -> TrainingRun:
        return run_resume(run=obj, actor=actor)


@extend_schema(tags=["Training runs"])
class RunRegisterApi(ProjectApiView):
    capability = "research"

    @extend_schema(
        summary="Serve a run's model for generation",
        description="Researchers. Registers a finished policy run's model as a `transformers` "
        "generation endpoint of the project, so generation jobs can sample from it: the loop closes. "
        "201 when the endpoint is created (`name`, optional, is its name). A run registered before "
        "answers 200 with its existing endpoint (`created` false, and a `note`) when `name` is empty "
        "or that endpoint's name; another name is 409 (an endpoint keeps its name). 409 too for a "
        "run that has not finished, or that was cancelled or failed (it has no model). 400 for a "
        "reward model, and for a policy without a chat template (a base model's: generation formats "
        "conversations with it).",
        request=RunRegisterSerializer,
        responses={
            200: RegisteredEndpointSerializer,
            201: RegisteredEndpointSerializer,
            **errors(400, 401, 403, 404, 409),
        },
    )
    def post(self, request: Request, slug: str, run_id: int) -> Response:
        run = _run(self.access.project, run_id)
        data = validated_input(RunRegisterSerializer, request.data)
        endpoint, created = run_register(run=run, name=data["name"], actor=request.user)
        note = (
            ""
            if created
            else f"This run was already registered as {endpoint.name!r}; that endpoint is answered "
            "and nothing was created."
        )
        body = {"endpoint": endpoint.name, "model": endpoint.model, "created": created, "note": note}
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


urlpatterns = [
    path("projects/<slug:slug>/runs/", RunListCreateApi.as_view(), name="api-runs"),
    path("projects/<slug:slug>/runs/<int:run_id>/", RunDetailApi.as_view(), name="api-run"),
    path("projects/<slug:slug>/runs/<int:run_id>/cancel/", RunCancelApi.as_view(), name="api-run-cancel"),
    path("projects/<slug:slug>/runs/<int:run_id>/resume/", RunResumeApi.as_view(), name="api-run-resume"),
    path(
        "projects/<slug:slug>/runs/<int:run_id>/register/", RunRegisterApi.as_view(), name="api-run-register"
    ),
]
