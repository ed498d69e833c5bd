"""Exports (immutable, versioned preference datasets) and training runs."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from core.jobs import JobState, Resumable, UserJob, WorkerJob
from core.models_constraints import one_of


class ExportFormat(models.TextChoices):
    TRL = "trl", "TRL preference (standard)"
    TRL_CONVERSATIONAL = "trl_conversational", "TRL preference (conversational)"
    TRL_UNPAIRED = "trl_unpaired", "TRL unpaired (KTO)"
    HH_RLHF = "hh_rlhf", "HH-RLHF transcripts"
    OPENAI = "openai", "OpenAI preference fine-tuning"
    RAW = "raw", "Raw annotations table"


# The job lifecycle (core.jobs.JobState) less ``cancelled``: an export cannot be cancelled.
ExportState = models.TextChoices(
    "ExportState", [(s.name, (s.value, s.label)) for s in JobState if s != JobState.CANCELLED]
)


class Export(Resumable, UserJob):
    """One immutable export of a project's comparisons. ``version`` counts per project.

    Resumable: a redelivered export starts again from scratch; a worker running one keeps its
    ``progress_at`` beating, so one whose worker died is sent again by the beat sweep.

    ``options`` are the compiler options (pairing, ties, aggregation, dimension, filters, split,
    seed); ``manifest`` holds counts, agreement figures, guideline versions and the SHA-256 of the
    content. Files live under ``path`` (data files, manifest.json, README.md dataset card).
    """

    project = models.ForeignKey("annotate.Project", on_delete=models.CASCADE, related_name="exports")
    version = models.PositiveIntegerField()
    format = models.CharField(max_length=32, choices=ExportFormat.choices)
    file_type = models.CharField(max_length=16, default="jsonl", help_text="jsonl or parquet")
    options = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=ExportState.choices, default=ExportState.QUEUED)
    manifest = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=64, blank=True)
    path = models.CharField(max_length=1000, blank=True)
    row_count = models.PositiveIntegerField(default=0)

    class Meta(UserJob.Meta):
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="export_unique_version"),
            one_of("format", ExportFormat, name="export_format_valid"),
            models.CheckConstraint(
                condition=Q(file_type__in=["jsonl", "parquet"]), name="export_file_type_valid"
            ),
            one_of("state", ExportState, name="export_state_valid"),
        ]

    RESUME_TASK = "training.export_run"

    def __str__(self) -> str:
        return f"{self.project} export v{self.version} ({self.format})"


class RunKind(models.TextChoices):
    REWARD = "reward", "Reward model"
    DPO = "dpo", "DPO"
    PPO = "ppo", "PPO"
    RLOO = "rloo", "RLOO"
    GRPO = "grpo", "GRPO"


RunState = JobState  # the shared job lifecycle (core.jobs)


def run_link(related_name: str, *, help_text: str = "") -> models.ForeignKey:
    """A run's link to another run (the one it builds on, scores with or continues): optional, and
    emptied, not deleted, when that run is deleted."""
    return models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name=related_name,
        help_text=help_text,
    )


class TrainingRun(WorkerJob):
    """A training run on an export (or a dataset file), executed as a subprocess on the training queue."""

    JOB_ERROR_CHARS = 20000

    project = models.ForeignKey("annotate.Project", on_delete=models.CASCADE, related_name="training_runs")
    kind = models.CharField(max_length=16, choices=RunKind.choices)
    export = models.ForeignKey(Export, null=True, blank=True, on_delete=models.PROTECT, related_name="runs")
    dataset_path = models.CharField(max_length=1000, blank=True)
    base_model = models.CharField(
        max_length=500, help_text="HF name, local path, or a previous run's output."
    )
    base_run = run_link("children")
    reward_run = run_link("+", help_text="PPO/RLOO/GRPO reward model.")
    config = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True, help_text="Latest and final metrics.")
    output_path = models.CharField(max_length=1000, blank=True)
    log_path = models.CharField(max_length=1000, blank=True)
    pid = models.IntegerField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life from the worker running it (every few seconds)."
    )
    cancel_requested = models.BooleanField(default=False)
    registered_endpoint = models.ForeignKey(
        "generation.ModelEndpoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resumed_from = run_link(
        "resumptions", help_text="The failed or cancelled run whose last checkpoint this one continues from."
    )

    class Meta(WorkerJob.Meta):
        constraints = [
            one_of("kind", RunKind, name="run_kind_valid"),
            one_of("state", RunState, name="run_state_valid"),
            models.CheckConstraint(
                condition=Q(export__isnull=False) | ~Q(dataset_path="") | Q(kind__in=["ppo", "rloo", "grpo"]),
                name="run_has_data",
            ),
        ]

    @property
    def job_noun(self) -> str:
        return f"{self.kind} run"


class MetricPoint(models.Model):
    """One logged step of a run: streamed from the training subprocess while it runs."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="points")
    step = models.PositiveIntegerField()
    values = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "step", "id"]
        indexes = [models.Index(fields=["run", "step"])]

    def __str__(self) -> str:
        return f"run {self.run_id} step {self.step}"
