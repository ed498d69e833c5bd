"""Researcher pages for exports: list + create, detail (manifest, dataset card), downloads."""

from __future__ import annotations

import json

from django import forms
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from annotate.errors import ServiceError, found
from annotate.models import Project
from annotate.selectors import project_people_ids
from annotate.throttles import page_rate_limit
from core.access import ProjectAccess, project_page
from core.pages import form_page_submit
from training import selectors
from training.compiler import ADJUDICATION_MODES, AGGREGATIONS, JUDGE_LABEL_MODES, PAIRINGS, TIE_MODES
from training.formats import FILE_TYPES
from training.models import Export, ExportFormat, ExportState
from training.services.exports import (
    export_create,
    export_file_path,
    export_files,
    export_option_defaults,
    export_zip_path,
)

# The service's defaults (training.compiler.ExportOptions): the form shows what the API and the
# CLI apply to an option left out, so the same request gives the same export everywhere.
DEFAULTS = export_option_defaults()


def _choices(modes: tuple[str, ...], **labels: str) -> list[tuple[str, str]]:
    """The service's modes (a mode it gains shows here), each with its label or its name."""
    return [(m, labels.get(m, m)) for m in modes]


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=ExportFormat.choices, initial=ExportFormat.TRL)
    file_type = forms.ChoiceField(choices=[(t, t) for t in FILE_TYPES], initial="jsonl")
    pairing = forms.ChoiceField(
        choices=[(p, p.replace("_", " ")) for p in PAIRINGS], initial=DEFAULTS["pairing"]
    )
    ties = forms.ChoiceField(
        choices=[(t, t) for t in TIE_MODES], initial=DEFAULTS["ties"], help_text="Ties and 'both bad'."
    )
    aggregate = forms.ChoiceField(choices=[(a, a) for a in AGGREGATIONS], initial=DEFAULTS["aggregate"])
    min_votes = forms.IntegerField(min_value=1, max_value=1000, initial=DEFAULTS["min_votes"])
    min_agreement = forms.FloatField(min_value=0, max_value=1, initial=DEFAULTS["min_agreement"])
    dimension = forms.ChoiceField(required=False, help_text="Blank: the overall choice.")
    include_gold = forms.BooleanField(required=False, initial=DEFAULTS["include_gold"])
    include_flagged = forms.BooleanField(required=False, initial=DEFAULTS["include_flagged"])
    labelers_include = forms.CharField(
        required=False, help_text="Only these labelers: usernames, comma-separated (blank: everyone)."
    )
    labelers_exclude = forms.CharField(
        required=False, help_text="Leave out these labelers: usernames, comma-separated."
    )
    min_reliability = forms.FloatField(
        required=False, min_value=0, max_value=1, initial=DEFAULTS["min_reliability"]
    )
    test_size = forms.FloatField(
        min_value=0,
        max_value=0.99,
        initial=DEFAULTS["test_size"],
        help_text=f"Share of prompts held out as the test split (default {DEFAULTS['test_size']:g}; "
        "0: no test split).",
    )
    seed = forms.IntegerField(initial=DEFAULTS["seed"])
    margin = forms.BooleanField(
        required=False, initial=DEFAULTS["margin"], help_text="Strength of preference as a margin column."
    )
    adjudication = forms.ChoiceField(
        choices=_choices(
            ADJUDICATION_MODES,
            prefer="prefer: a task's final label replaces its votes",
            ignore="ignore final labels",
        ),
        required=False,  # not sent (an older form, a script): the service's default
        initial=DEFAULTS["adjudication"],
        label="Final labels",
    )
    judge_labels = forms.ChoiceField(
        choices=_choices(JUDGE_LABEL_MODES, include="include, marked", exclude="leave out"),
        required=False,
        initial=DEFAULTS["judge_labels"],
        label="AI judges' labels",
    )
    labeled_by = forms.BooleanField(
        required=False,
        initial=DEFAULTS["labeled_by"],
        label="Labeled-by column",
        help_text="Say on each row whether humans, judges or both labeled it.",
    )
    soft_labels = forms.BooleanField(
        required=False,
        initial=DEFAULTS["soft_labels"],
        help_text="Add p_chosen, the labeler-reliability model's probability that the chosen reply is preferred.",
    )

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        # the choices are the service's: a mode it gains shows here, a label missing reads as its name
        self.fields["dimension"].choices = [("", "(overall choice)")] + [
            (d.key, d.label) for d in project.dimensions.all()
        ]

    def _labelers(self, name: str) -> list[int]:
        try:
            return project_people_ids(project=self.project, names=self.cleaned_data[name], field=name)
        except ServiceError as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_labelers_include(self) -> list[int]:
        return self._labelers("labelers_include")

    def clean_labelers_exclude(self) -> list[int]:
        return self._labelers("labelers_exclude")

    def options(self) -> dict:
        data = dict(self.cleaned_data)
        data.pop("format")
        data.pop("file_type")
        for name in ("adjudication", "judge_labels"):
            if not data.get(name):
                data.pop(name, None)  # left out: the service's default
        return data


@project_page("research")
@require_http_methods(["GET", "POST"])
@page_rate_limit("export")
def export_list(request: HttpRequest, access: ProjectAccess) -> HttpResponse:
    project = access.project
    form = ExportForm(request.POST or None, project=project)
    export, status = form_page_submit(
        request,
        form,
        lambda data: export_create(
            project=project,
            format=data["format"],
            file_type=data["file_type"],
            options=form.options(),
            actor=request.user,
        ),
    )
    if export is not None:
        return redirect("training:export_detail", slug=project.slug, version=export.version)
    exports = Export.objects.filter(project=project).select_related("created_by").order_by("-version")
    return render(
        request,
        "training/exports/list.html",
        {"project": project, "form": form, "exports": exports},
        status=status,
    )


def _export_for(access: ProjectAccess, version: int) -> Export:
    return found(selectors.export_get(project=access.project, version=version), "No such export.")


@project_page("research")
@require_GET
def export_detail(request: HttpRequest, access: ProjectAccess, version: int) -> HttpResponse:
    export = _export_for(access, version)
    files, card = [], ""
    if export.state == ExportState.DONE:
        try:
            files = export_files(export=export)
            card = export_file_path(export=export, name="README.md").read_text(encoding="utf-8")
        except ServiceError:
            files, card = [], ""
    context = {
        "project": export.project,
        "export": export,
        "files": files,
        "card": card,
        "manifest_json": json.dumps(export.manifest, indent=2, ensure_ascii=False) if export.manifest else "",
        "options_json": json.dumps(export.options, indent=2),
        "pending": export.state in (ExportState.QUEUED, ExportState.RUNNING),
    }
    return render(request, "training/exports/detail.html", context)


@project_page("research")
@require_GET
def export_download(
    request: HttpRequest, access: ProjectAccess, version: int, name: str | None = None
) -> HttpResponse:
    """The whole export as a zip, or one of its files by name (only names in the export folder)."""
    export = _export_for(access, version)
    try:
        if name is None:
            path = export_zip_path(export=export)
            filename = f"{export.project.slug}-v{export.version}.zip"
        else:
            path = export_file_path(export=export, name=name)
            filename = f"{export.project.slug}-v{export.version}-{name}"
    except ServiceError:
        raise Http404("No such file.") from None
    return FileResponse(open(path, "rb"), as_attachment=True, filename=filename)
