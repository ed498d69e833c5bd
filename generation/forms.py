"""Forms of the researchers' generation pages: parse and check input shapes, nothing more
(the services validate meaning and answer with ServiceError)."""

from __future__ import annotations

from django import forms

from annotate.services.tasks import PairMode
from core import pages_forms as core_forms
from generation.models import AutoRelease, Backend, ModelEndpoint, TaskMode

CONFIG_HELP = (
    'JSON. transformers: {"device": "auto" (the GPU when the worker has one; or cpu, cuda:N), "dtype": "auto", "batch_size": 32}; '
    'openai: {"base_url": "http://gpu-box:8000/v1", "api_key_env": "PREFHUB_KEY_MYSERVER", "concurrency": 8, '
    '"timeout_s": 120, "max_retries": 3}; vllm: {"dtype": "bfloat16", "tensor_parallel_size": 1, '
    '"gpu_memory_utilization": 0.9, "max_model_len": 4096}. Never paste an API key: name the '
    "environment variable that holds it."
)

SAMPLING_DEFAULT_HELP = "Empty: each model's default sampling (its endpoint's settings), else"


class JSONObjectField(core_forms.JSONObjectField):
    """The shared JSON-object field (``core.pages_forms``) in a monospaced three-row box."""

    widget = forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "class": "mono"})
    default_error_messages = {"not_object": "Give a JSON object ({...})."}


class EndpointForm(forms.Form):
    name = forms.SlugField(max_length=100, help_text="A short unique name, e.g. qwen-0-5b-local.")
    backend = forms.ChoiceField(choices=Backend.choices, initial=Backend.TRANSFORMERS)
    model = forms.CharField(
        max_length=500, help_text="Hugging Face name, local path, or the model name the server serves."
    )
    config = JSONObjectField(required=False, help_text=CONFIG_HELP)
    default_sampling = JSONObjectField(
        required=False, help_text='JSON, e.g. {"temperature": 0.8, "top_p": 0.95, "max_new_tokens": 512}.'
    )
    shared = forms.BooleanField(required=False, help_text="Usable by every project (administrators only).")


class JobForm(forms.Form):
    FILTERS = [
        ("all", "All prompts"),
        ("untagged", "Untagged prompts"),
        ("tag", "Prompts with a tag"),
        ("ids", "Prompt ids"),
    ]

    endpoints = forms.ModelMultipleChoiceField(
        queryset=ModelEndpoint.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        help_text="One or more models.",
    )
    k = forms.IntegerField(min_value=1, max_value=64, initial=2, label="Samples per prompt per model (k)")
    filter_mode = forms.ChoiceField(choices=FILTERS, initial="all", label="Prompts")
    tag = forms.CharField(required=False, max_length=100)
    ids = forms.CharField(
        required=False,
        max_length=100_000,
        help_text="The ids of the imported lines (such as q1, q7), separated by commas or spaces.",
    )
    task_mode = forms.ChoiceField(choices=TaskMode.choices, required=False, label="Tasks to create")
    pairs_per_prompt = forms.IntegerField(required=False, min_value=1, max_value=1000)
    # No initial values: a field a researcher leaves empty is left out of the job's sampling, so each
    # endpoint's default_sampling applies (a pre-filled value would be submitted and override it).
    temperature = forms.FloatField(
        required=False, min_value=0, max_value=5, help_text=f"0: greedy. {SAMPLING_DEFAULT_HELP} 1.0."
    )
    top_p = forms.FloatField(
        required=False, min_value=0, max_value=1, help_text=f"{SAMPLING_DEFAULT_HELP} 1.0."
    )
    top_k = forms.IntegerField(
        required=False, min_value=0, help_text=f"0: no cut. {SAMPLING_DEFAULT_HELP} none."
    )
    max_new_tokens = forms.IntegerField(
        required=False, min_value=1, max_value=32768, help_text=f"{SAMPLING_DEFAULT_HELP} 256."
    )
    seed = forms.IntegerField(required=False, min_value=0, help_text="Empty: drawn at random and recorded.")
    stop = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=r"One stop string per line (\n for a newline).",
    )
    batch_size = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=256,
        help_text="Prompts per worker task. Empty: up to 16, and at least 4 tasks per model so progress moves.",
    )
    auto_release = forms.ChoiceField(
        choices=AutoRelease.choices,
        required=False,
        initial=AutoRelease.STAGED,
        label="When generation ends",
        help_text="Staged: review the checks and sample outputs on the job page, then release.",
    )

    def __init__(self, *args, endpoints=None, project=None, **kwargs):
        super().__init__(*args, **kwargs)
        if endpoints is not None:
            self.fields["endpoints"].queryset = endpoints
        if project is not None and not self.is_bound:
            self.fields["task_mode"].initial = (
                PairMode.RANKING if project.kind == "ranking" else PairMode.ALL_PAIRS
            )

    def clean_ids(self) -> list[str]:
        """The ids as typed (the service resolves imported ids, and numbers as database ids)."""
        raw = self.cleaned_data.get("ids") or ""
        return [part.strip() for part in raw.replace(" ", ",").split(",") if part.strip()]

    def service_kwargs(self) -> dict:
        """The cleaned form as job_create's keyword arguments."""
        data = self.cleaned_data
        mode = data["filter_mode"]
        prompt_filter: dict = {"mode": mode}
        if mode == "tag":
            prompt_filter["tag"] = data.get("tag", "")
        elif mode == "ids":
            prompt_filter["ids"] = data.get("ids", [])
        sampling = {
            key: data[key]
            for key in ("temperature", "top_p", "top_k", "max_new_tokens", "seed")
            if data.get(key) is not None
        }
        # One per line; "\n" and "\t" written out stand for a newline and a tab.
        stop = [
            line.replace("\\n", "\n").replace("\\t", "\t")
            for line in (data.get("stop") or "").splitlines()
            if line
        ]
        if stop:
            sampling["stop"] = stop
        return {
            "endpoints": list(data["endpoints"]),
            "k": data["k"],
            "prompt_filter": prompt_filter,
            "task_mode": data.get("task_mode") or None,
            "pairs_per_prompt": data.get("pairs_per_prompt"),
            "sampling": sampling,
            "batch_size": data.get("batch_size"),
            "auto_release": data.get("auto_release") or "",
        }
