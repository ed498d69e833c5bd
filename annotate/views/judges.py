"""The AI judges page (capability "judge": managers and researchers): create a judge, run a judge
job, read its suggestions, costs and routing decisions; managers also set the project's judge
settings and re-route the tasks no human worked on yet. Parse input, call one service or selector,
render."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from annotate.errors import found
from annotate.judges import selectors, services
from annotate.judges.forms import (
    JudgeActiveForm,
    JudgeForm,
    JudgeRerouteForm,
    JudgeRunForm,
    JudgeSettingsForm,
)
from annotate.models import TaskKind
from annotate.models_judges import JudgeJob
from annotate.throttles import page_rate_limit
from core.access import ProjectAccess, project_page
from core.jobs import JobState
from core.pages import flash_form_outcome, flash_outcome, form_submit, object_button, post_form
from generation.selectors import endpoints_for_project


def _home(request: HttpRequest, access: ProjectAccess, *, judge_form=None, status: int = 200) -> HttpResponse:
    project = access.project
    endpoints = endpoints_for_project(project=project).filter(is_active=True)
    judges, total_tasks = selectors.judges_with_todo(project=project)
    context = {
        **access.nav("judges"),
        "judges": judges,
        "total_tasks": total_tasks,
        "jobs": selectors.judge_jobs_for_project(project=project)[:100],
        "judge_form": judge_form or JudgeForm(endpoints=endpoints),
        "run_form": JudgeRunForm(),
        "settings_form": JudgeSettingsForm(
            initial={
                "judge_pre_annotation": project.judge_pre_annotation,
                "judge_routing": project.judge_routing,
                "judge_audit_share": project.judge_audit_share,
                "judge_min_strength": project.judge_min_strength,
            }
        ),
        "can_edit_settings": access.can("manage"),
        "pairwise": project.kind == TaskKind.PAIRWISE,
        "pairwise_only": services.PAIRWISE_ONLY,
        "routing": selectors.routing_summary(project=project),
        "reroute": selectors.reroute_preview(project=project) if access.can("manage") else None,
        **_reroute_job_context(project),
    }
    return render(request, "annotate/judges/home.html", context, status=status)


@project_page("judge")
@require_GET
def judges_home(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    return _home(request, access)


@project_page("judge")
@post_form("annotate:judges")
def judge_new(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    project = access.project
    form = JudgeForm(request.POST, endpoints=endpoints_for_project(project=project).filter(is_active=True))
    judge = form_submit(form, lambda data: services.judge_create(project=project, actor=request.user, **data))
    if judge is not None:
        messages.success(request, f"Judge {judge.name} added.")
        return redirect("annotate:judges", project.slug)
    return _home(request, access, judge_form=form, status=400)


@project_page("judge")
@require_POST
@page_rate_limit("jobs")  # as its API twin (JudgeRunApi): each job calls a paid model
def judge_run(request: HttpRequest, access: ProjectAccess, judge_id: int) -> HttpResponse:
    project = access.project
    judge = found(selectors.judge_get(project=project, judge_id=judge_id), "No such judge.")
    ok, job = flash_form_outcome(
        request,
        JudgeRunForm(request.POST),
        lambda data: services.judge_job_create(
            judge=judge, actor=request.user, limit=data["limit"], only_unjudged=data["only_unjudged"]
        ),
        lambda job: f"Judge job #{job.pk} queued on the generation workers.",
    )
    if not ok:
        return redirect("annotate:judges", project.slug)
    return redirect(reverse("annotate:judge_job", args=[project.slug, job.pk]))


@project_page("judge")
@require_POST
def judge_active(request: HttpRequest, access: ProjectAccess, judge_id: int) -> HttpResponse:
    project = access.project
    judge = found(selectors.judge_get(project=project, judge_id=judge_id), "No such judge.")
    flash_form_outcome(
        request,
        JudgeActiveForm(request.POST),
        lambda data: services.judge_set_active(judge=judge, active=data["active"], actor=request.user),
        lambda out: (
            f"Judge {out[0].name} switched {'on' if out[0].is_active else 'off'}"
            + (f"; {out[1]} of its jobs cancelled." if out[1] else ".")
        ),
    )
    return redirect("annotate:judges", project.slug)


@project_page("manage")
@require_POST
def judge_settings(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    project = access.project
    form = JudgeSettingsForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, "Check the judge settings: " + "; ".join(e for es in form.errors.values() for e in es)
        )
        return redirect("annotate:judges", project.slug)
    flash_outcome(
        request,
        lambda: services.judge_settings_change(project=project, actor=request.user, values=form.cleaned_data),
        "Judge settings saved.",
    )
    return redirect("annotate:judges", project.slug)


def _rerouted_message(out: services.RerouteOutcome) -> str:
    text = (
        f"Re-routed {out.rerouted} task{'s' if out.rerouted != 1 else ''}: "
        f"{out.human_to_judge} from humans to the judges, {out.judge_to_human} from the judges to "
        f"humans, {out.unchanged} unchanged. Now {out.to_judges} labeled by the judges, "
        f"{out.to_humans} sent to humans"
    )
    if out.undecided:
        text += f", {out.undecided} without a decision (no active judge answered: humans label them)"
    text += "."
    if out.left_alone:
        why = ", ".join(f"{n} {REROUTE_LEFT_ALONE[r]}" for r, n in out.left_alone_why.items())
        text += f" {out.left_alone} task{'s' if out.left_alone != 1 else ''} kept their decision ({why})."
    return text


def _reroute_job_context(project) -> dict:
    """The project's latest re-route for the Judges page: the job, and what it changed once done."""
    job = selectors.reroute_job_latest(project=project)
    done = job is not None and job.state == JobState.DONE and isinstance(job.outcome, dict)
    return {
        "reroute_job": job,
        "reroute_job_message": _rerouted_message(services.RerouteOutcome(**job.outcome)) if done else "",
    }


#: The re-route message's words for why a task was left alone (``selectors.LEFT_ALONE_REASONS``).
REROUTE_LEFT_ALONE = {
    "human_work": "labeled or held by a labeler",
    "reviewed": "with a reviewed label",
    "adjudicated": "adjudicated",
}


@project_page("manage")
@require_POST
def judge_reroute(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    project = access.project
    if not JudgeRerouteForm(request.POST).is_valid():
        messages.error(request, "Tick the confirmation to re-route: nothing was changed.")
        return redirect("annotate:judges", project.slug)
    flash_outcome(
        request,
        lambda: services.reroute_start(project=project, actor=request.user),
        lambda job: (
            f"Re-routing {job.total_units} task{'s' if job.total_units != 1 else ''} in the "
            "background: this page shows the outcome when it ends."
        ),
    )
    return redirect("annotate:judges", project.slug)


def _job_for(access: ProjectAccess, job_id: int) -> JudgeJob:
    return found(selectors.judge_job_get(project=access.project, job_id=job_id), "No such judge job.")


def _back_to_job(access: ProjectAccess, job: JudgeJob) -> HttpResponse:
    return redirect("annotate:judge_job", access.project.slug, job.pk)


@project_page("judge")
@require_GET
def judge_job(request: HttpRequest, access: ProjectAccess, job_id: int) -> HttpResponse:
    job = _job_for(access, job_id)
    return render(
        request,
        "annotate/judges/job.html",
        {
            **access.nav("judges"),
            "job": job,
            "suggestions": selectors.suggestions_for_job(job=job),
            "counts": selectors.suggestion_counts(job=job),
        },
    )


@object_button("judge", find=_job_for, back=_back_to_job)
def judge_job_cancel(request: HttpRequest, access: ProjectAccess, job: JudgeJob) -> str:
    services.judge_job_cancel(job=job, actor=request.user)
    return "Cancelled: tasks judged so far keep their suggestions."


@object_button("judge", find=_job_for, back=_back_to_job, rate_limit="jobs")  # it queues paid calls again
def judge_job_retry(request: HttpRequest, access: ProjectAccess, job: JudgeJob) -> str:
    services.judge_job_retry_failed(job=job, actor=request.user)
    return "Queued again for the tasks that failed because the server was down or overloaded."
