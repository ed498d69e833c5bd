"""Researcher pages for training runs: list + launch form, run page (live charts, log, cancel,
register as a generation endpoint), and the JSON the run page polls."""

from __future__ import annotations

import json

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotate.errors import found
from annotate.models import Project
from annotate.throttles import page_rate_limit
from core.access import ProjectAccess, project_page
from core.pages import flash_form_outcome, flash_outcome, form_page_submit, object_button
from core.pages_forms import JSONObjectField
from training import selectors
from training.models import RunKind, RunState, TrainingRun
from training.services.runs import (
    POLICY_KINDS,
    run_cancel,
    run_create,
    run_option_defaults,
    run_register_endpoint,
    run_resume,
)


class RunForm(forms.Form):
    kind = forms.ChoiceField(choices=RunKind.choices, initial=RunKind.REWARD)
    export = forms.TypedChoiceField(
        required=False,
        coerce=int,
        empty_value=None,
        help_text="The export to train on (its test split is held out).",
    )
    base_model = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.TextInput(
            attrs={"list": "base-model-options", "autocomplete": "off", "spellcheck": "false"}
        ),
        help_text="A registered model (type to see them), a Hugging Face name in the local cache, or a "
        "model folder you may use; checked when you launch. Or pick a base run.",
    )
    base_run = forms.TypedChoiceField(
        required=False, coerce=int, empty_value=None, help_text="Start from a finished run."
    )
    reward_run = forms.TypedChoiceField(
        required=False, coerce=int, empty_value=None, help_text="PPO, RLOO and GRPO: the reward model."
    )
    config = JSONObjectField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        help_text='Options as JSON, e.g. {"learning_rate": 1e-5, "num_train_epochs": 1}. Defaults below.',
        error_messages={"not_object": "The options must be a JSON object."},
    )

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["export"].choices = [("", "(none)")] + [
            (e.pk, f"v{e.version} · {e.get_format_display()} · {e.row_count} rows")
            for e in selectors.trainable_exports(project=project)
        ]
        runs = list(selectors.finished_runs(project=project))
        self.fields["base_run"].choices = [("", "(none)")] + [
            (r.pk, f"#{r.pk} {r.get_kind_display()}") for r in runs if r.kind in POLICY_KINDS
        ]
        self.fields["reward_run"].choices = [("", "(none)")] + [
            (r.pk, f"#{r.pk} reward model") for r in runs if r.kind == RunKind.REWARD
        ]
        self.base_model_options = selectors.base_model_options(project=project, policy_kinds=POLICY_KINDS)


class RegisterForm(forms.Form):
    """The register button's name (the API's ``RunRegisterSerializer``: at most 100 characters)."""

    name = forms.CharField(label="Endpoint name", required=False, max_length=100)


def _run_for(access: ProjectAccess, run_id: int) -> TrainingRun:
    return found(selectors.run_get(project=access.project, run_id=run_id), "No such run.")


def _back_to_run(access: ProjectAccess, run: TrainingRun) -> HttpResponse:
    return redirect("training:run_detail", slug=access.project.slug, run_id=run.pk)


@project_page("research")
@require_http_methods(["GET", "POST"])
@page_rate_limit("runs")
def run_list(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    project = access.project
    form = RunForm(request.POST or None, project=project)

    def launch(data: dict) -> TrainingRun:
        runs = {r.pk: r for r in selectors.finished_runs(project=project)}
        return run_create(
            project=project,
            kind=data["kind"],
            base_model=data["base_model"],
            export=selectors.trainable_exports(project=project).filter(pk=data["export"]).first()
            if data["export"]
            else None,
            base_run=runs.get(data["base_run"]),
            reward_run=runs.get(data["reward_run"]),
            config=data["config"],
            actor=request.user,
        )

    run, status = form_page_submit(request, form, launch)
    if run is not None:
        return redirect("training:run_detail", slug=project.slug, run_id=run.pk)
    context = {
        "project": project,
        "form": form,
        "runs": selectors.runs_for_project(project=project),
        "defaults": {kind: json.dumps(run_option_defaults(kind), indent=1) for kind in RunKind.values},
    }
    return render(request, "training/runs/list.html", context, status=status)


def _detail_context(run: TrainingRun) -> dict:
    return {
        "project": run.project,
        "run": run,
        "charts": selectors.run_charts(run=run),
        "final": (run.metrics or {}).get("final") or {},
        "latest": (run.metrics or {}).get("latest") or {},
        "active": run.state in selectors.ACTIVE_STATES,
        "can_register": run.kind in POLICY_KINDS
        and run.state == RunState.DONE
        and not run.registered_endpoint_id,
        "config_json": json.dumps(run.config, indent=2),
        "resumable_from_step": selectors.run_resume_point(run=run),
    }


@project_page("research")
@require_GET
def run_detail(request: HttpRequest, access: ProjectAccess, run_id: int) -> HttpResponse:
    run = _run_for(access, run_id)
    context = _detail_context(run)
    context["log"] = selectors.run_log_tail(run=run)
    return render(request, "training/runs/detail.html", context)


@project_page("research")
@require_GET
def run_status_json(request: HttpRequest, access: ProjectAccess, run_id: int) -> HttpResponse:
    """What the run page polls: state, latest metrics, the charts (server-rendered SVG) and the log tail."""
    run = _run_for(access, run_id)
    context = _detail_context(run)
    payload = selectors.run_status(run=run)
    payload["charts_html"] = render_to_string("training/runs/_charts.html", context, request=request)
    payload["summary_html"] = render_to_string("training/runs/_summary.html", context, request=request)
    payload["log"] = selectors.run_log_tail(run=run)
    return JsonResponse(payload)


@object_button("research", find=_run_for, back=_back_to_run, level=messages.info)
def run_cancel_view(request: HttpRequest, access: ProjectAccess, run: TrainingRun) -> str:
    run_cancel(run=run, actor=request.user)
    return "Cancelling the run."


@project_page("research")
@require_POST
@page_rate_limit("runs")
def run_resume_view(request: HttpRequest, access: ProjectAccess, run_id: int) -> HttpResponse:
    run = _run_for(access, run_id)
    step = selectors.run_resume_point(run=run)
    _, resumed = flash_outcome(
        request,
        lambda: run_resume(run=run, actor=request.user),
        f"This run continues run #{run.pk} from its checkpoint at step {step}.",
    )
    return _back_to_run(access, resumed or run)


@project_page("research")
@require_POST
def run_register_view(request: HttpRequest, access: ProjectAccess, run_id: int) -> HttpResponse:
    run = _run_for(access, run_id)
    flash_form_outcome(
        request,
        RegisterForm(request.POST),
        lambda data: run_register_endpoint(run=run, name=data["name"], actor=request.user),
        lambda endpoint: f"Registered as the generation endpoint {endpoint.name}.",
    )
    return _back_to_run(access, run)
