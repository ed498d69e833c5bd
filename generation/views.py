"""The generation pages, access checked by ``core.access``: researchers (capability "research")
list jobs, add endpoints, start and cancel jobs; managers and researchers (capability "release")
read a job's page (live progress, settings read-only, failures, its staged candidates: checks per
model, sample outputs) and release its candidates. Parse input, call one service or selector,
render."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from annotate.errors import found
from annotate.models import Project
from annotate.throttles import page_rate_limit
from core.access import ProjectAccess, is_site_admin, project_page
from core.pages import form_submit, object_button, post_form
from generation import selectors, services
from generation.forms import EndpointForm, JobForm
from generation.models import RELEASABLE_STATES, GenerationJob


def _job_for(access: ProjectAccess, job_id: int) -> GenerationJob:
    return found(selectors.job_get(project=access.project, job_id=job_id), "No such generation job.")


def _back_to_job(access: ProjectAccess, job: GenerationJob) -> HttpResponse:
    return redirect("generation:job_detail", slug=access.project.slug, job_id=job.pk)


def _home_context(
    request: HttpRequest, project: Project, nav: dict, *, job_form=None, endpoint_form=None
) -> dict:
    endpoints = selectors.endpoints_for_project(project=project)
    active = endpoints.filter(is_active=True)
    return {
        **nav,
        "jobs": selectors.jobs_for_project(project=project)[:100],
        "endpoints": endpoints,
        "job_form": job_form or JobForm(endpoints=active, project=project),
        "endpoint_form": endpoint_form or EndpointForm(),
        "tags": selectors.prompt_tags(project=project, limit=50),
        "can_share_endpoints": is_site_admin(request.user),
    }


@project_page("research")
@require_GET
def project_home(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    project, nav = access.project, access.nav("generation")
    return render(request, "generation/home.html", _home_context(request, project, nav))


@project_page("research")
@post_form("generation:home")
def endpoint_new(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    project, nav = access.project, access.nav("generation")
    form = EndpointForm(request.POST)
    if form.is_valid() and form.cleaned_data["shared"] and not is_site_admin(request.user):
        form.add_error(None, "Only administrators can share an endpoint with every project.")
    else:
        endpoint = form_submit(
            form,
            lambda data: services.endpoint_create(
                name=data["name"],
                backend=data["backend"],
                model=data["model"],
                config=data["config"],
                default_sampling=data["default_sampling"],
                project=None if data["shared"] else project,
                actor=request.user,
                restrict_paths=True,
            ),
        )
        if endpoint is not None:
            messages.success(request, f"Endpoint {endpoint.name} added.")
            return redirect("generation:home", slug=project.slug)
    context = _home_context(request, project, nav, endpoint_form=form)
    context["open_form"] = "endpoint"
    return render(request, "generation/home.html", context, status=400)


@project_page("research")
@post_form("generation:home")
@page_rate_limit("jobs")
def job_new(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    project, nav = access.project, access.nav("generation")
    endpoints = selectors.endpoints_for_project(project=project, active_only=True)
    form = JobForm(request.POST, endpoints=endpoints, project=project)
    job = form_submit(
        form, lambda _data: services.job_create(project=project, actor=request.user, **form.service_kwargs())
    )
    if job is not None:
        messages.success(request, f"Generation job {job.pk} queued.")
        return redirect("generation:job_detail", slug=project.slug, job_id=job.pk)
    context = _home_context(request, project, nav, job_form=form)
    context["open_form"] = "job"
    return render(request, "generation/home.html", context, status=400)


@project_page("release")
@require_GET
def job_detail(request: HttpRequest, access: ProjectAccess, job_id: int) -> HttpResponse:
    # a manager reaches the job from the Progress page (the generation tab is for researchers)
    project, nav = access.project, access.nav("generation" if access.can("research") else "progress")
    job = _job_for(access, job_id)
    status = selectors.job_status(job=job)
    staged = selectors.job_staged_summary(job=job) if status["finished"] else None
    return render(
        request,
        "generation/job_detail.html",
        {
            **nav,
            "job": job,
            "status": status,
            "failures": selectors.job_failures(job=job),
            "sampling_by_endpoint": services.job_sampling_by_endpoint(job=job),
            "staged": staged,
            "samples": selectors.job_staged_samples(job=job) if staged else [],
            "can_cancel": access.can("research"),
            "can_release": status["finished"]
            and not job.released
            and job.state in RELEASABLE_STATES
            and status["candidates"] > 0,
            "status_url": reverse("generation:job_status", kwargs={"slug": project.slug, "job_id": job.pk}),
        },
    )


@project_page("release")
@require_GET
def job_status_json(request: HttpRequest, access: ProjectAccess, job_id: int) -> JsonResponse:
    job = _job_for(access, job_id)
    response = JsonResponse(selectors.job_status(job=job))
    response["Cache-Control"] = "no-store"
    return response


@object_button("research", find=_job_for, back=_back_to_job)
def job_cancel(request: HttpRequest, access: ProjectAccess, job: GenerationJob) -> str:
    services.job_cancel(job=job, actor=request.user)
    return f"Generation job {job.pk} cancelled."


RELEASE_MESSAGES = {
    "all": "Released all candidates of job {job}: {tasks} tasks created.",
    "passing": "Released the passing candidates of job {job}: {tasks} tasks created, {excluded} candidates left out.",
    "none": "Discarded the candidates of job {job}: no task created.",
}


@object_button("release", find=_job_for, back=_back_to_job)
def job_release(request: HttpRequest, access: ProjectAccess, job: GenerationJob) -> str:
    released = services.job_release(job=job, which=request.POST.get("which", ""), actor=request.user)
    return RELEASE_MESSAGES[released.released].format(
        job=released.pk, tasks=released.released_tasks, excluded=released.excluded_candidates
    )
