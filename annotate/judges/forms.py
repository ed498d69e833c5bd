"""Forms of the judges page (parse input only; the services validate and decide)."""

from __future__ import annotations

from django import forms

from annotate.strength import Strength
from core.pages_forms import JSONObjectField


class JudgeForm(forms.Form):
    name = forms.SlugField(max_length=80, help_text="Letters, digits and dashes.")
    endpoint = forms.ModelChoiceField(queryset=None, help_text="The model that judges.")
    sampling = JSONObjectField(
        required=False,
        initial='{"temperature": 0, "max_new_tokens": 300}',
        widget=forms.TextInput(attrs={"class": "mono"}),
        help_text="JSON sampling parameters (no n).",
        error_messages={
            "unsafe": "Sampling: %(error)s.",  # a NUL (jsonb cannot store it) or nesting too deep for Python
            "invalid_json": 'Sampling must be a JSON object, e.g. {"temperature": 0}.',
            "not_object": "Sampling must be a JSON object.",
        },
    )
    price_prompt_per_1k = forms.DecimalField(required=False, min_value=0, max_digits=12, decimal_places=6)
    price_completion_per_1k = forms.DecimalField(required=False, min_value=0, max_digits=12, decimal_places=6)

    def __init__(self, *args, endpoints=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["endpoint"].queryset = endpoints


class JudgeRunForm(forms.Form):
    limit = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=100_000,
        label="Number of tasks",
        help_text="Judge the first N tasks.",
        error_messages={"invalid": "a whole number from 1 to 100,000."},
    )
    only_unjudged = forms.BooleanField(
        required=False, initial=True, label="Only tasks this judge has not judged yet"
    )


class JudgeActiveForm(forms.Form):
    active = forms.TypedChoiceField(
        choices=[("0", "off"), ("1", "on")],
        coerce=lambda v: v == "1",
        label="Switch",
        error_messages={"required": "say on or off.", "invalid_choice": "say on or off."},
    )


class JudgeSettingsForm(forms.Form):
    judge_pre_annotation = forms.BooleanField(required=False, label="Pre-annotate for labelers")
    judge_routing = forms.BooleanField(required=False, label="Route confident pairs to the judges")
    judge_audit_share = forms.FloatField(min_value=0, max_value=1, label="Audit share (0..1)")
    judge_min_strength = forms.TypedChoiceField(
        choices=Strength.choices, coerce=int, label="Minimum strength (how much better)"
    )


class JudgeRerouteForm(forms.Form):
    confirm = forms.BooleanField(
        required=True, label="I understand: these tasks' judge labels and decisions are made again."
    )
