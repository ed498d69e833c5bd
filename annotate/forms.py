"""Forms of the manager's pages (the labeler's page posts JSON, parsed in the views)."""

from __future__ import annotations

from django import forms
from django.conf import settings

from annotate.models import Project, Role, TaskKind, TaskOrder, project_bounds
from annotate.services.guidelines import MAX_GUIDELINE_CHARS, plain_newlines
from annotate.services.imports import FORMATS, SEVERAL_FILES
from annotate.services.projects import (
    DIMENSION_DESCRIPTION_MAX,
    DIMENSION_KEY_MAX,
    DIMENSION_LABEL_MAX,
    MAX_DIMENSIONS,
)
from annotate.services.tasks import PairMode


class ProjectSettingsForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    overlap = forms.IntegerField(
        **project_bounds("overlap"),
        help_text="Distinct labelers per task. Changing it moves existing tasks too.",
    )
    lease_ttl_minutes = forms.IntegerField(
        min_value=1,
        max_value=24 * 60,
        label="Lease time (minutes)",
        help_text="How long a labeler holds a task before it goes back to the pool.",
    )
    rating_scale_max = forms.IntegerField(
        **project_bounds("rating_scale_max"),
        label="Rating scale",
        help_text="Dimension ratings run from 1 to this.",
    )
    # Pairwise
    allow_tie = forms.BooleanField(required=False, label="Allow “tie”")
    allow_both_bad = forms.BooleanField(required=False, label="Allow “both bad”")
    strength_scale = forms.BooleanField(
        required=False, label="Ask for strength of preference", help_text="Slightly / clearly / much better."
    )
    # Ranking
    ranking_k = forms.IntegerField(
        **project_bounds("ranking_k"),
        label="Responses per ranking task",
        help_text="Applies to tasks created from now on.",
    )
    allow_rank_ties = forms.BooleanField(required=False, label="Allow ties in rankings")
    # Task order and extra labels
    task_order = forms.ChoiceField(
        choices=TaskOrder.choices,
        required=False,
        label="Task order",
        help_text="Fewest labels first always comes first; “active” then prefers the pairs of models "
        "whose order is least certain (pairwise projects).",
    )
    target_agreement = forms.FloatField(
        required=False,
        min_value=0.01,
        max_value=1,
        label="Target agreement",
        help_text="E.g. 0.7: a task whose labels agree less (share of the most common verdict) asks "
        "for one more label. Empty: off.",
    )
    max_labels_per_task = forms.IntegerField(
        required=False,
        **project_bounds("max_labels_per_task"),
        label="Most labels per task",
        help_text="Extra labels stop at this many.",
    )

    PAIRWISE_FIELDS = ("allow_tie", "allow_both_bad", "strength_scale")
    RANKING_FIELDS = ("ranking_k", "allow_rank_ties")

    def __init__(self, *args, project: Project, **kwargs) -> None:
        kwargs.setdefault(
            "initial",
            {
                "name": project.name,
                "description": project.description,
                "overlap": project.overlap,
                "lease_ttl_minutes": max(1, round(project.lease_ttl_seconds / 60)),
                "rating_scale_max": project.rating_scale_max,
                "allow_tie": project.allow_tie,
                "allow_both_bad": project.allow_both_bad,
                "strength_scale": project.strength_scale,
                "ranking_k": project.ranking_k,
                "allow_rank_ties": project.allow_rank_ties,
                "task_order": project.task_order,
                "target_agreement": project.target_agreement,
                "max_labels_per_task": project.max_labels_per_task,
            },
        )
        super().__init__(*args, **kwargs)
        self.project = project
        hidden = self.RANKING_FIELDS if project.kind == TaskKind.PAIRWISE else self.PAIRWISE_FIELDS
        for name in hidden:
            del self.fields[name]

    def kind_fields(self):
        names = self.PAIRWISE_FIELDS if self.project.kind == TaskKind.PAIRWISE else self.RANKING_FIELDS
        return [self[name] for name in names]

    def general_fields(self):
        return [
            self[name] for name in ("name", "description", "overlap", "lease_ttl_minutes", "rating_scale_max")
        ]

    def routing_fields(self):
        return [self[name] for name in ("task_order", "target_agreement", "max_labels_per_task")]

    def settings_values(self) -> dict:
        data = dict(self.cleaned_data)
        data["lease_ttl_seconds"] = data.pop("lease_ttl_minutes") * 60
        for name in ("task_order", "max_labels_per_task"):  # not sent: unchanged
            if data.get(name) in (None, ""):
                data.pop(name, None)
        return data


class DimensionForm(forms.Form):
    label = forms.CharField(
        max_length=DIMENSION_LABEL_MAX,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "e.g. Helpfulness"}),
    )
    key = forms.SlugField(
        max_length=DIMENSION_KEY_MAX,
        required=False,
        help_text="Stable name in exports; derived from the label.",
        widget=forms.TextInput(attrs={"placeholder": "derived from the name"}),
    )
    description = forms.CharField(
        max_length=DIMENSION_DESCRIPTION_MAX,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "What labelers should judge (shown on hover)"}),
    )
    required = forms.BooleanField(required=False)


DimensionFormSet = forms.formset_factory(
    DimensionForm, extra=1, max_num=MAX_DIMENSIONS, absolute_max=2 * MAX_DIMENSIONS
)


def dimension_rows(formset) -> list[dict]:
    """The dimensions as the settings service takes them, in the order shown, blank rows dropped."""
    rows = []
    for form in formset.forms:
        data = form.cleaned_data if form.is_bound else {}
        if not data or not (data.get("label") or "").strip():
            continue
        rows.append(
            {
                "label": data["label"].strip(),
                "key": (data.get("key") or "").strip(),
                "description": data.get("description") or "",
                "required": bool(data.get("required")),
            }
        )
    return rows


class GuidelineText(forms.CharField):
    """Guidelines as they are stored (plain newlines): the length limit counts a line break once."""

    def to_python(self, value):
        return plain_newlines(super().to_python(value))


class GuidelineForm(forms.Form):
    body = GuidelineText(
        max_length=MAX_GUIDELINE_CHARS,
        widget=forms.Textarea(attrs={"rows": 24, "spellcheck": "true", "class": "editor-textarea"}),
        label="Guidelines (Markdown)",
    )
    change_note = forms.CharField(
        max_length=300,
        required=False,
        label="What changed",
        help_text="Shown to labelers when they are asked to acknowledge the new version.",
    )


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150)
    email = forms.EmailField(required=False, help_text="Only used when a new account is created.")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.LABELER)


class ImportForm(forms.Form):
    file = forms.FileField(help_text="JSONL (one prompt per line) or HH-RLHF; plain or gzip.")
    format = forms.ChoiceField(choices=[(f, f) for f in FORMATS], initial="auto")
    task_mode = forms.ChoiceField(
        required=False,
        choices=[
            ("", "Project default"),
            (PairMode.ALL_PAIRS, "Pairwise: every pair of responses"),
            (PairMode.SAMPLED_PAIRS, "Pairwise: a sample of pairs per prompt"),
            (PairMode.RANKING, "Ranking: one task of K responses per prompt"),
            (PairMode.NONE, "No tasks (prompts and responses only)"),
        ],
    )
    pairs_per_prompt = forms.IntegerField(required=False, min_value=1, max_value=1000)
    skip_invalid = forms.BooleanField(
        required=False,
        label="Import the good lines even if some are bad",
        help_text="Off: the whole file is imported or nothing is.",
    )

    @staticmethod
    def max_bytes() -> int:
        return int(settings.PREFHUB_MAX_IMPORT_BYTES)

    def clean_file(self):
        count = len(self.files.getlist(self.add_prefix("file")))
        if count > 1:
            raise forms.ValidationError(SEVERAL_FILES.format(count=count), code="several")
        return self.cleaned_data["file"]
