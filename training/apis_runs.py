"""REST API for training runs: create (queued on the training queue), list, status, cancel,
register as a generation endpoint. Included under /api/v1/ by config.api_urls (paths projects/<slug>/runs/...)."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from annotate.errors import InvalidInput, NotFound
from annotate.throttles import WriteScopedRateThrottle
from core.access import ProjectApiView
from core.api import ERRORS, paginated_response
from training import selectors
from training.models import Export, RunKind, TrainingRun
from training.services.runs import run_cancel, run_create, run_register_endpoint


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


def _run(project, run_id: int) -> TrainingRun:
    run = selectors.run_get(project=project, run_id=run_id)
    if run is None:
        raise NotFound("No such run.")
    return run


def _project_run(project, run_id: int | None, field: str) -> TrainingRun | None:
    if run_id is None:
        return None
    run = TrainingRun.objects.filter(project=project, pk=run_id).first()
    if run is None:
        raise InvalidInput("No such run in this project.", field=field)
    return run


class RunListCreateApi(ProjectApiView):
    """A project's runs, newest first; POST validates and queues a new one."""

    capability = "research"

    throttle_classes = [WriteScopedRateThrottle]
    throttle_scope = "runs"

    @extend_schema(operation_id="training_runs_list", responses={200: OpenApiTypes.OBJECT, **ERRORS})
    def get(self, request: Request, slug: str) -> Response:
        project = self.access.project
        runs = selectors.runs_for_project(project=project)
        return paginated_response(request, self, runs, lambda run: selectors.run_status(run=run))

    @extend_schema(request=RunCreateSerializer, responses={201: OpenApiTypes.OBJECT, **ERRORS})
    def post(self, request: Request, slug: str) -> Response:
        project = self.access.project
        ser = RunCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        data = ser.validated_data
        export = None
        if data["export"] is not None:
            export = Export.objects.filter(project=project, version=data["export"]).first()
            if export is None:
                raise InvalidInput("No such export version in this project.", field="export")
        run = run_create(
            project=project,
            kind=data["kind"],
            base_model=data["base_model"],
            export=export,
            dataset_path=data["dataset_path"],
            base_run=_project_run(project, data["base_run"], "base_run"),
            reward_run=_project_run(project, data["reward_run"], "reward_run"),
            config=data["config"],
            actor=request.user,
        )
        return Response(selectors.run_status(run=run), status=status.HTTP_201_CREATED)


class RunDetailApi(ProjectApiView):
    capability = "research"

    """A run's status: state, latest and final metrics, error."""

    @extend_schema(operation_id="training_runs_retrieve", responses={200: OpenApiTypes.OBJECT, **ERRORS})
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


class RunCancelApi(ProjectApiView):
    capability = "research"

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT, **ERRORS})
    def post(self, request: Request, slug: str, run_id: int) -> Response:
        run = run_cancel(run=_run(self.access.project, run_id), actor=request.user)
        return Response(selectors.run_status(run=run))


class RunRegisterApi(ProjectApiView):
    capability = "research"

    @extend_schema(request=RunRegisterSerializer, responses={201: OpenApiTypes.OBJECT, **ERRORS})
    def post(self, request: Request, slug: str, run_id: int) -> Response:
        run = _run(self.access.project, run_id)
        ser = RunRegisterSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        endpoint = run_register_endpoint(run=run, name=ser.validated_data["name"], actor=request.user)
        return Response({"endpoint": endpoint.name, "model": endpoint.model}, status=status.HTTP_201_CREATED)


urlpatterns = [
    path("projects/<slug:slug>/runs/", RunListCreateApi.as_view(), name="api-runs"),
    path("projects/<slug:slug>/runs/<int:run_id>/", RunDetailApi.as_view(), name="api-run"),
    path("projects/<slug:slug>/runs/<int:run_id>/cancel/", RunCancelApi.as_view(), name="api-run-cancel"),
    path(
        "projects/<slug:slug>/runs/<int:run_id>/register/", RunRegisterApi.as_view(), name="api-run-register"
    ),
]
