"""Model endpoints and generation jobs.

A ``ModelEndpoint`` names a model and how to run it (backend + settings); a ``GenerationJob``
samples k responses per prompt per endpoint. Candidates are written once each:
``annotate.Candidate`` is unique on (job, prompt, endpoint, sample_index). They land *staged*:
each gets a ``CandidateCheck`` row (automatic checks, computed when its batch commits) and no task
exists until somebody releases the job (all, the passing ones, or none), unless the job was
created with ``auto_release``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.jobs import FINAL_STATES, JobState, WorkerJob  # JobState: the shared job lifecycle
from core.models import Authored
from core.models_constraints import one_of


class Backend(models.TextChoices):
    VLLM = "vllm", "vLLM (in-process, GPU)"
    OPENAI = "openai", "OpenAI-compatible server"
    TRANSFORMERS = "transformers", "Hugging Face transformers"


class ModelEndpoint(Authored):
    """A named model and the backend that runs it.

    ``config`` holds backend settings: for ``vllm`` dtype, tensor_parallel_size,
    gpu_memory_utilization, max_model_len; for ``openai`` base_url, api_key_env (the *name* of an
    environment variable; the key itself is never stored), concurrency, timeout_s; for
    ``transformers`` device, dtype, batch_size. ``default_sampling`` holds sampling defaults.
    """

    name = models.SlugField(max_length=100, unique=True)
    backend = models.CharField(max_length=16, choices=Backend.choices)
    model = models.CharField(
        max_length=500, help_text="Hugging Face model name, local path, or served model name."
    )
    config = models.JSONField(default=dict, blank=True)
    default_sampling = models.JSONField(default=dict, blank=True)
    project = models.ForeignKey(
        "annotate.Project",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="endpoints",
        help_text="Visible to this project only; empty for every project.",
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [one_of("backend", Backend, name="endpoint_backend_valid")]

    def __str__(self) -> str:
        return self.name

    @property
    def shown_config(self) -> dict:
        """``config`` as pages and the API show it: without what could be a credential
        (``generation.backends.config_without_secrets``, the rule backups follow too)."""
        from generation.backends import config_without_secrets

        return config_without_secrets(self.backend, self.config or {})


class TaskMode(models.TextChoices):
    ALL_PAIRS = "all_pairs", "All pairs"
    SAMPLED_PAIRS = "sampled_pairs", "Sampled pairs per prompt"
    RANKING = "ranking", "K-way ranking"
    NONE = "none", "No tasks"


class AutoRelease(models.TextChoices):
    """What happens to a job's candidates when generation ends."""

    STAGED = "", "Stay staged until somebody releases them"
    PASSING = "passing", "Release the passing ones at once"
    ALL = "all", "Release all at once"


class ReleaseWhich(models.TextChoices):
    """What a release let through to the labeling queue ("" while staged)."""

    STAGED = "", "Staged"
    ALL = "all", "All candidates"
    PASSING = "passing", "Passing candidates only"
    NONE = "none", "None (discarded)"


# A job whose staged candidates may be released: it has ended without failing.
RELEASABLE_STATES = (JobState.DONE, JobState.CANCELLED)


class GenerationJob(WorkerJob):
    JOB_NOUN = "generation job"

    project = models.ForeignKey("annotate.Project", on_delete=models.CASCADE, related_name="generation_jobs")
    endpoints = models.ManyToManyField(ModelEndpoint, related_name="jobs")
    prompt_filter = models.JSONField(
        default=dict, blank=True, help_text='{"mode": "all"|"untagged"|"tag", "tag": ..., "ids": [...]}'
    )
    k = models.PositiveSmallIntegerField(default=2, help_text="Samples per prompt per endpoint.")
    sampling = models.JSONField(default=dict, blank=True)
    task_mode = models.CharField(max_length=16, choices=TaskMode.choices, default=TaskMode.ALL_PAIRS)
    pairs_per_prompt = models.PositiveSmallIntegerField(null=True, blank=True)
    batch_size = models.PositiveSmallIntegerField(default=16)
    total_units = models.PositiveIntegerField(default=0, help_text="(prompt, endpoint) pairs to generate.")
    done_units = models.PositiveIntegerField(default=0)
    failed_units = models.PositiveIntegerField(default=0)
    auto_release = models.CharField(
        max_length=8,
        choices=AutoRelease.choices,
        default=AutoRelease.STAGED,
        blank=True,
        help_text="Empty: candidates stay staged until released on the job page or through the API.",
    )
    released = models.CharField(
        max_length=8, choices=ReleaseWhich.choices, default=ReleaseWhich.STAGED, blank=True
    )
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    released_tasks = models.PositiveIntegerField(default=0, help_text="Tasks the release created.")
    excluded_candidates = models.PositiveIntegerField(
        default=0, help_text="Candidates the release left out of the labeling queue."
    )

    class Meta(WorkerJob.Meta):
        constraints = [
            models.CheckConstraint(condition=Q(k__gte=1) & Q(k__lte=64), name="job_k_range"),
            one_of("state", JobState, name="job_state_valid"),
            one_of("task_mode", TaskMode, name="job_task_mode_valid"),
            one_of("auto_release", AutoRelease, name="job_auto_release_valid"),
            one_of("released", ReleaseWhich, name="job_released_valid"),
            # released once, with its time; a staged job has created no tasks yet
            models.CheckConstraint(
                condition=(Q(released="") & Q(released_at__isnull=True) & Q(released_tasks=0))
                | (~Q(released="") & Q(released_at__isnull=False)),
                name="job_release_recorded",
            ),
        ]


# A batch waits ``pending``, then ends the way a job ends (and as its job does when it is cancelled
# or fails first): the final states of the job lifecycle (core.jobs).
BatchState = models.TextChoices(
    "BatchState", [("PENDING", ("pending", "Pending")), *((s.name, (s.value, s.label)) for s in FINAL_STATES)]
)


class GenerationBatch(models.Model):
    """A unit of work for one Celery task: some prompts of a job x one endpoint.

    Its ``state`` leaves ``pending`` exactly once, in the same transaction that writes its
    candidates and failures and bumps the job's counters, so a retried or redelivered batch finds
    it finished and writes nothing twice.
    """

    job = models.ForeignKey(GenerationJob, on_delete=models.CASCADE, related_name="batches")
    endpoint = models.ForeignKey(ModelEndpoint, on_delete=models.CASCADE, related_name="+")
    index = models.PositiveIntegerField(help_text="Position within the job; also offsets the sampling seed.")
    prompt_ids = models.JSONField(default=list)
    state = models.CharField(max_length=16, choices=BatchState.choices, default=BatchState.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Times a worker started this batch.")
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of the worker generating it (every few seconds)."
    )
    enqueued_at = models.DateTimeField(
        null=True, blank=True, help_text="When the sweep last sent it again (a message lost with its worker)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "index"]
        constraints = [
            models.UniqueConstraint(fields=["job", "index"], name="generationbatch_unique_index"),
            one_of("state", BatchState, name="generationbatch_state_valid"),
        ]
        indexes = [models.Index(fields=["job", "state"])]

    def __str__(self) -> str:
        return f"batch {self.index} of job {self.job_id} ({self.state})"


class GenerationFailure(models.Model):
    """Why one (prompt, endpoint) unit of a job produced no candidates."""

    job = models.ForeignKey(GenerationJob, on_delete=models.CASCADE, related_name="failures")
    prompt = models.ForeignKey(
        "annotate.Prompt", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    endpoint = models.ForeignKey(
        ModelEndpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    message = models.TextField()
    attempts = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "prompt", "endpoint"], name="generationfailure_unique_unit"
            ),
        ]

    def __str__(self) -> str:
        return f"failure in job {self.job_id}: {self.message[:60]}"


#: The automatic checks, in the order the page shows them: (field, badge, explanation).
CHECKS: tuple[tuple[str, str, str], ...] = (
    ("empty", "empty", "No text (or only whitespace)."),
    ("duplicate", "duplicate", "Same text as an earlier candidate of the same prompt."),
    ("identical", "identical pair", "Every candidate of the prompt has the same text."),
    ("bad_chars", "control chars", "Holds U+FFFD or a control character other than newline and tab."),
    ("over_length", "over length", "Used the whole max_new_tokens budget."),
    ("stop_reason", "stop reason", 'Did not finish with "stop" (cut by length, filtered, aborted).'),
)
CHECK_FIELDS = tuple(name for name, _, _ in CHECKS)


class CandidateCheck(models.Model):
    """The automatic checks of one generated candidate, computed when its batch commits (duplicate
    and identical are recomputed for a prompt whenever another endpoint's batch adds candidates to
    it). ``passed`` is true exactly when no check failed (a database constraint says so), so a
    release of the passing candidates is one indexed filter."""

    candidate = models.OneToOneField(
        "annotate.Candidate", primary_key=True, on_delete=models.CASCADE, related_name="generation_check"
    )
    job = models.ForeignKey(GenerationJob, on_delete=models.CASCADE, related_name="checks")
    endpoint = models.ForeignKey(
        ModelEndpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    prompt = models.ForeignKey("annotate.Prompt", on_delete=models.CASCADE, related_name="+")
    empty = models.BooleanField(default=False)
    duplicate = models.BooleanField(default=False)
    identical = models.BooleanField(default=False)
    bad_chars = models.BooleanField(default=False)
    over_length = models.BooleanField(default=False)
    stop_reason = models.BooleanField(default=False)
    passed = models.BooleanField(default=True)
    finish_reason = models.CharField(
        max_length=32, blank=True, help_text="The backend's own finish reason (vLLM, server or transformers)."
    )

    class Meta:
        ordering = ["candidate"]
        constraints = [
            models.CheckConstraint(
                condition=Q(passed=True, **dict.fromkeys(CHECK_FIELDS, False))
                | (
                    Q(passed=False)
                    & (
                        Q(empty=True)
                        | Q(duplicate=True)
                        | Q(identical=True)
                        | Q(bad_chars=True)
                        | Q(over_length=True)
                        | Q(stop_reason=True)
                    )
                ),
                name="candidatecheck_passed_iff_no_failure",
            ),
        ]
        indexes = [models.Index(fields=["job", "endpoint", "passed"])]

    def __str__(self) -> str:
        return f"checks of candidate {self.candidate_id}"

    @property
    def failed(self) -> list[str]:
        return [name for name in CHECK_FIELDS if getattr(self, name)]
