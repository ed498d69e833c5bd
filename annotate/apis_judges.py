"""REST API for AI judges (config/api_urls.py includes ``urlpatterns`` under /api/v1/): what the
Judges page does, for scripts.

    GET  projects/<slug>/judges/                          the project's judges
    POST projects/<slug>/judges/                          add one (an endpoint by name)
    GET  projects/<slug>/judges/<judge_id>/               one judge
    PATCH projects/<slug>/judges/<judge_id>/              {"is_active": false|true}: switch it off/on
    POST projects/<slug>/judges/<judge_id>/jobs/          run a judge over the project's tasks
    GET  projects/<slug>/judge-jobs/                      judge jobs, newest first
    GET  projects/<slug>/judge-jobs/<judge_job_id>/       a job: progress, tokens, cost, verdicts
    POST projects/<slug>/judge-jobs/<judge_job_id>/cancel/
    POST projects/<slug>/judge-jobs/<judge_job_id>/retry/ its transiently failed tasks, again
    GET  projects/<slug>/judges/reroute/                  the latest re-route (managers)
    POST projects/<slug>/judges/reroute/                  start a re-route (managers; 202)

Everything needs the "judge" capability (managers and researchers) except re-routing, which is
the managers' ("manage"), as on the page; checked by ``core.access`` (roles and the token's
project scope: 404 outside it, 403 for other roles). A judge or job id of another project is a
404. Service refusals answer ``{"error", "detail", "field"}`` with their 4xx status.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from annotate.errors import InvalidInput, found
from annotate.judges import selectors, services
from annotate.models import Judge, JudgeJob, Project, RerouteJob
from annotate.throttles import WriteScopedRateThrottle
from core.access import ProjectApiView
from core.api import validated_as_service_input
from core.api_actions import ProjectObjectActionApi
from core.api_lists import ProjectPagedListApi, ProjectPagedListCreateApi
from core.api_schema import JobStatusSerializer, errors
from core.jobs import job_status_payload
from generation.selectors import endpoints_for_project

TAG = "AI judges"


def _decimal(value) -> str | None:
    return None if value is None else str(value)


def judge_data(judge: Judge) -> dict:
    return {
        "id": judge.pk,
        "name": judge.name,
        "endpoint": judge.endpoint.name,
        "model": judge.endpoint.model,
        "sampling": judge.sampling,
        "price_prompt_per_1k": _decimal(judge.price_prompt_per_1k),
        "price_completion_per_1k": _decimal(judge.price_completion_per_1k),
        "is_active": judge.is_active,
        "created_at": judge.created_at.isoformat(),
    }


def judge_job_data(job: JudgeJob, *, with_counts: bool = False) -> dict:
    data = {
        **job_status_payload(job),
        "judge": job.judge.name,
        "rubric_version": job.rubric_version,
        "sampling": job.sampling,
        "total_units": job.total_units,
        "done_units": job.done_units,
        "failed_units": job.failed_units,
        "judged_units": job.judged_units,
        "retry_at": job.retry_at.isoformat() if job.retry_waiting else None,
        "retry_units": job.retry_units if job.retry_waiting else 0,
        "stalled": job.stalled,
        "prompt_tokens": job.prompt_tokens,
        "completion_tokens": job.completion_tokens,
        "usage_missing_units": job.usage_missing_units,
        "seconds": job.seconds,
        "cost": _decimal(job.cost),
        "created_at": job.created_at.isoformat(),
        "created_by": job.created_by.get_username() if job.created_by else None,
    }
    if with_counts:
        data["suggestions"] = selectors.suggestion_counts(job=job)
    return data


def reroute_job_data(job: RerouteJob) -> dict:
    return {
        **job_status_payload(job),
        "total_units": job.total_units,
        "done_units": job.done_units,
        "stalled": job.stalled,
        "outcome": job.outcome or None,
        "created_at": job.created_at.isoformat(),
        "created_by": job.created_by.get_username() if job.created_by else None,
    }


# --- request bodies --------------------------------------------------------------------------------


class JudgeInput(serializers.Serializer):
    name = serializers.CharField(max_length=80, help_text="Letters, digits and dashes.")
    endpoint = serializers.CharField(
        max_length=100,
        help_text="The name of an active endpoint this project may use (its own or a shared one).",
    )
    sampling = serializers.DictField(
        required=False, default=dict, help_text='Sampling parameters (no n), e.g. {"temperature": 0}.'
    )
    price_prompt_per_1k = serializers.DecimalField(
        max_digits=12, decimal_places=6, min_value=0, required=False, allow_null=True, default=None
    )
    price_completion_per_1k = serializers.DecimalField(
        max_digits=12, decimal_places=6, min_value=0, required=False, allow_null=True, default=None
    )


class JudgeSwitchInput(serializers.Serializer):
    is_active = serializers.BooleanField(
        help_text="false switches the judge off: its queued and running jobs are cancelled, its "
        "verdicts no longer count for routing or pre-annotation; true switches it on again."
    )


class JudgeRunInput(serializers.Serializer):
    task_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        allow_null=True,
        default=None,
        max_length=services.MAX_TASKS_PER_JOB,
        help_text="Only these tasks (default: the project's tasks in order).",
    )
    limit = serializers.IntegerField(
        min_value=1, max_value=services.MAX_TASKS_PER_JOB, required=False, allow_null=True, default=None
    )
    only_unjudged = serializers.BooleanField(
        required=False,
        default=True,
        help_text="Skip the tasks this judge already answered (not billed again).",
    )


# --- response bodies (documentation: the *_data functions build them) ------------------------------


class JudgeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    endpoint = serializers.CharField(help_text="The endpoint's name.")
    model = serializers.CharField()
    sampling = serializers.DictField()
    price_prompt_per_1k = serializers.CharField(allow_null=True, help_text="A decimal, as text.")
    price_completion_per_1k = serializers.CharField(allow_null=True, help_text="A decimal, as text.")
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class JudgeSwitchedSerializer(JudgeSerializer):
    jobs_cancelled = serializers.IntegerField(help_text="Jobs of this judge that switching it off stopped.")


class JudgeJobSerializer(JobStatusSerializer):
    judge = serializers.CharField()
    rubric_version = serializers.IntegerField(
        allow_null=True, help_text="The guideline version it judged by."
    )
    sampling = serializers.DictField()
    total_units = serializers.IntegerField(help_text="Tasks to judge.")
    done_units = serializers.IntegerField(help_text="Tasks settled, failed ones included.")
    failed_units = serializers.IntegerField()
    judged_units = serializers.IntegerField(help_text="Tasks the judge answered.")
    retry_at = serializers.DateTimeField(
        allow_null=True, help_text="While waiting for an extra pass over tasks that failed transiently."
    )
    retry_units = serializers.IntegerField()
    stalled = serializers.BooleanField(
        help_text="Active but no progress (nor a due extra pass) for PREFHUB_JOB_STALLED_AFTER_S (10 "
        "minutes): its worker stopped, or no worker has taken it yet. The beat sweep sends it again "
        "when its message is gone from the outbox and the broker's queue."
    )
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    usage_missing_units = serializers.IntegerField(help_text="Answers whose server reported no token usage.")
    seconds = serializers.FloatField()
    cost = serializers.CharField(allow_null=True, help_text="A decimal, as text; null when not priced.")
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField(allow_null=True)


class JudgeJobDetailSerializer(JudgeJobSerializer):
    suggestions = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Verdicts per status (ok, inconsistent, not_allowed, unparseable, failed, failed_transient).",
    )


class RerouteJobSerializer(JobStatusSerializer):
    total_units = serializers.IntegerField(help_text="Tasks in the re-route's scope.")
    done_units = serializers.IntegerField()
    stalled = serializers.BooleanField(
        help_text="Active but no progress for PREFHUB_JOB_STALLED_AFTER_S (10 minutes): a new start "
        "replaces it (the beat sweep also sends it again when its message is gone)."
    )
    outcome = serializers.DictField(
        allow_null=True, help_text="What it changed so far: rerouted, judge_to_human, human_to_judge, ..."
    )
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField(allow_null=True)


# --- views -----------------------------------------------------------------------------------------


def _judge(project: Project, judge_id: int) -> Judge:
    return found(selectors.judge_get(project=project, judge_id=judge_id), "No such judge in this project.")


def _job(project: Project, job_id: int) -> JudgeJob:
    return found(
        selectors.judge_job_get(project=project, job_id=job_id), "No such judge job in this project."
    )


@extend_schema(tags=[TAG])
class JudgeListCreateApi(ProjectPagedListCreateApi):
    capability = "judge"
    row_serializer = JudgeSerializer
    list_summary = "List AI judges"
    list_description = "Managers and researchers. The project's judges, by name."
    list_operation_id = "judges_list"
    create_input = JudgeInput
    create_summary = "Add an AI judge"
    create_description = (
        "Managers and researchers. A judge compares the project's pairs with a rubric "
        "built from the current guidelines, served by a model endpoint (named)."
    )
    create_operation_id = "judges_create"
    create_errors = (400, 401, 403, 404, 409)

    def rows(self, project: Project) -> QuerySet[Judge]:
        return selectors.judges_for_project(project=project)

    def row_data(self, row: Judge) -> dict:
        return judge_data(row)

    def create(self, project: Project, data: dict, actor) -> Judge:
        name = data.pop("endpoint")
        endpoint = endpoints_for_project(project=project).filter(name=name).first()
        if endpoint is None:
            raise InvalidInput(f"No endpoint named {name!r} is available to this project.", field="endpoint")
        return services.judge_create(project=project, endpoint=endpoint, actor=actor, **data)


@extend_schema(tags=[TAG])
class JudgeDetailApi(ProjectApiView):
    capability = "judge"

    @extend_schema(
        summary="Read an AI judge",
        description="Managers and researchers. Its endpoint, sampling, prices and whether it is on.",
        operation_id="judges_detail",
        responses={200: JudgeSerializer, **errors(401, 403, 404)},
    )
    def get(self, request: Request, slug: str, judge_id: int) -> Response:
        return Response(judge_data(_judge(self.access.project, judge_id)))

    @extend_schema(
        summary="Switch an AI judge off or on",
        description="Managers and researchers. Off: it cannot run, its queued and running jobs are "
        "cancelled (what they judged is kept) and its verdicts no longer count for routing or "
        "pre-annotation (re-route to withdraw its labels where no human worked). The answer's "
        "`jobs_cancelled` says how many jobs stopped.",
        operation_id="judges_switch",
        request=JudgeSwitchInput,
        responses={200: JudgeSwitchedSerializer, **errors(400, 401, 403, 404)},
    )
    def patch(self, request: Request, slug: str, judge_id: int) -> Response:
        judge = _judge(self.access.project, judge_id)
        data = validated_as_service_input(JudgeSwitchInput, request.data)
        judge, cancelled = services.judge_set_active(
            judge=judge, active=data["is_active"], actor=request.user
        )
        return Response({**judge_data(judge), "jobs_cancelled": cancelled})


@extend_schema(tags=[TAG])
class JudgeRunApi(ProjectApiView):
    capability = "judge"
    throttle_classes = [WriteScopedRateThrottle]
    throttle_scope = "jobs"

    @extend_schema(
        summary="Run an AI judge",
        description="Managers and researchers. Queues a job judging the project's pairwise tasks (each "
        "twice, positions swapped) on the generation queue; by default only the tasks this judge has "
        "not answered yet. Its verdicts route tasks when the project's routing is on.",
        operation_id="judges_run",
        request=JudgeRunInput,
        responses={201: JudgeJobSerializer, **errors(400, 401, 403, 404, 429)},
    )
    def post(self, request: Request, slug: str, judge_id: int) -> Response:
        judge = _judge(self.access.project, judge_id)
        data = validated_as_service_input(JudgeRunInput, request.data)
        job = services.judge_job_create(
            judge=judge,
            actor=request.user,
            task_ids=data["task_ids"],
            limit=data["limit"],
            only_unjudged=data["only_unjudged"],
        )
        return Response(judge_job_data(job), status=status.HTTP_201_CREATED)


@extend_schema(tags=[TAG])
class JudgeJobListApi(ProjectPagedListApi):
    capability = "judge"
    row_serializer = JudgeJobSerializer
    list_summary = "List judge jobs"
    list_description = (
        "Managers and researchers. The project's judge jobs, newest first, with progress and cost."
    )
    list_operation_id = "judge_jobs_list"

    def rows(self, project: Project) -> QuerySet[JudgeJob]:
        return selectors.judge_jobs_for_project(project=project)

    def row_data(self, row: JudgeJob) -> dict:
        return judge_job_data(row)


@extend_schema(tags=[TAG])
class JudgeJobDetailApi(ProjectApiView):
    capability = "judge"

    @extend_schema(
        summary="Read a judge job",
        description="Managers and researchers. State, progress, tokens, seconds, cost, and its verdicts "
        "counted per status.",
        operation_id="judge_job_detail",
        responses={200: JudgeJobDetailSerializer, **errors(401, 403, 404)},
    )
    def get(self, request: Request, slug: str, judge_job_id: int) -> Response:
        return Response(judge_job_data(_job(self.access.project, judge_job_id), with_counts=True))


class JudgeJobActionApi(ProjectObjectActionApi):
    """An action on a judge job of the project (404 for another project's), answered as the job
    list shows the job."""

    capability = "judge"
    row_serializer = JudgeJobSerializer

    def target(self, slug: str, judge_job_id: int) -> JudgeJob:
        return _job(self.access.project, judge_job_id)

    def row_data(self, row: JudgeJob) -> dict:
        return judge_job_data(row)


@extend_schema(tags=[TAG])
class JudgeJobCancelApi(JudgeJobActionApi):
    action_summary = "Cancel a judge job"
    action_description = (
        "Managers and researchers. Stops a queued or running job (409 when it has ended): the "
        "tasks judged so far keep their verdicts."
    )
    action_operation_id = "judge_job_cancel"

    def act(self, obj: JudgeJob, actor) -> JudgeJob:
        return services.judge_job_cancel(job=obj, actor=actor)


@extend_schema(tags=[TAG])
class JudgeJobRetryApi(JudgeJobActionApi):
    throttle_classes = [WriteScopedRateThrottle]  # as JudgeRunApi: it queues the same paid calls
    throttle_scope = "jobs"
    action_summary = "Retry a judge job's failed tasks"
    action_description = (
        "Managers and researchers. A finished job (done or failed) is queued again for the "
        "tasks whose judging failed because the server was down or overloaded; permanent failures "
        "stay. 409 for a job still running or cancelled."
    )
    action_operation_id = "judge_job_retry"

    def act(self, obj: JudgeJob, actor) -> JudgeJob:
        return services.judge_job_retry_failed(job=obj, actor=actor)


@extend_schema(tags=[TAG])
class RerouteApi(ProjectApiView):
    capability = "manage"

    @extend_schema(
        summary="Read the latest re-route",
        description="Managers. The project's newest re-route: queued, its progress while running, then "
        "what it changed (`outcome`) or why it failed. 404 when there has been none.",
        operation_id="judges_reroute_status",
        responses={200: RerouteJobSerializer, **errors(401, 403, 404)},
    )
    def get(self, request: Request, slug: str) -> Response:
        job = found(selectors.reroute_job_latest(project=self.access.project), "No re-route yet.")
        return Response(reroute_job_data(job))

    @extend_schema(
        summary="Start a re-route",
        description="Managers. Routes again, on a worker, with the active judges and the current "
        "settings, every judged task no human has worked on yet (see the Judges page). 400 when routing "
        "is off or nothing can be re-routed; 409 while another re-route of the project runs. Follow it "
        "with GET.",
        operation_id="judges_reroute_start",
        request=None,
        responses={202: RerouteJobSerializer, **errors(400, 401, 403, 404, 409)},
    )
    def post(self, request: Request, slug: str) -> Response:
        job = services.reroute_start(project=self.access.project, actor=request.user)
        return Response(reroute_job_data(job), status=status.HTTP_202_ACCEPTED)


P = "projects/<slug:slug>/"

J = P + "judges/<int:judge_id>/"
JJ = P + "judge-jobs/<int:judge_job_id>/"

urlpatterns = [
    path(P + "judges/", JudgeListCreateApi.as_view(), name="api-judges"),
    path(P + "judges/reroute/", RerouteApi.as_view(), name="api-judges-reroute"),
    path(J, JudgeDetailApi.as_view(), name="api-judge"),
    path(J + "jobs/", JudgeRunApi.as_view(), name="api-judge-run"),
    path(P + "judge-jobs/", JudgeJobListApi.as_view(), name="api-judge-jobs"),
    path(JJ, JudgeJobDetailApi.as_view(), name="api-judge-job"),
    path(JJ + "cancel/", JudgeJobCancelApi.as_view(), name="api-judge-job-cancel"),
    path(JJ + "retry/", JudgeJobRetryApi.as_view(), name="api-judge-job-retry"),
]
