"""AI judges: a model endpoint that labels a project's pairs, its jobs, suggestions and routing.

* ``Judge``: a ``generation.ModelEndpoint`` + sampling parameters (+ optional prices per 1k tokens)
  for one project. It labels as its own inactive user (``user``, no password, never a member), so
  its judge-labeled annotations (``Annotation.source = "judge"``) enter exports and the reliability
  model as a labeler, clearly marked.
* ``JudgeJob``: one run of a judge over the project's pairwise tasks (the shared job lifecycle,
  run on the generation queue). It records the rubric (rendered from the guideline version current
  when the job was created) and the totals of tokens, seconds and cost. A running job can be
  waiting (``retry_at``) for an extra pass over the tasks that failed because the server was down,
  its message delivered again then (``annotate.judges.services``).
* ``JudgeSuggestion``: the verdict of one job on one task, judged twice with the responses'
  positions swapped. Provenance: endpoint, model name/version, rubric version, sampling params, both
  raw outputs. ``status``: ``ok`` (both parsed and consistent), ``inconsistent`` (the verdict moved
  with the positions: uncertain), ``not_allowed`` (a consistent verdict the project does not
  allow: a tie or "both bad" where those are switched off; never a label), ``unparseable`` (kept
  with the raw text) or ``failed`` (the backend refused the prompt; ``transient`` when the server
  was down or overloaded, so judging it again may work). Tokens are None (unknown) when the server
  did not report its usage; the cost is then unknown too.
* ``RoutingDecision``: per task, whether the judges or humans label it, and why (re-routed on a
  manager's request while no human worked on the task: ``annotate.judges.services.routing_reroute``).
* ``RerouteJob``: one such re-route, run by a worker (the shared job lifecycle), with its progress
  and outcome.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotate.strength import strength_in_range
from core.jobs import JobState, ResumableJob
from core.models import Authored
from core.models_constraints import one_of


class Judge(Authored):
    project = models.ForeignKey("annotate.Project", on_delete=models.CASCADE, related_name="judges")
    name = models.SlugField(max_length=80)
    endpoint = models.ForeignKey("generation.ModelEndpoint", on_delete=models.PROTECT, related_name="judges")
    sampling = models.JSONField(default=dict, blank=True, help_text="SamplingParams overrides (no n).")
    price_prompt_per_1k = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True, help_text="Price per 1,000 prompt tokens."
    )
    price_completion_per_1k = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True, help_text="Price per 1,000 completion tokens."
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="judge_profile",
        help_text="The inactive account its judge labels are recorded under.",
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["project", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="judge_unique_name"),
            models.CheckConstraint(
                condition=Q(price_prompt_per_1k__isnull=True) | Q(price_prompt_per_1k__gte=0),
                name="judge_price_prompt_nonnegative",
            ),
            models.CheckConstraint(
                condition=Q(price_completion_per_1k__isnull=True) | Q(price_completion_per_1k__gte=0),
                name="judge_price_completion_nonnegative",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def priced(self) -> bool:
        return self.price_prompt_per_1k is not None or self.price_completion_per_1k is not None


def cost_field(help_text: str) -> models.DecimalField:
    """A cost of judging (prices are per 1,000 tokens), to the millionth; none: unknown."""
    return models.DecimalField(max_digits=16, decimal_places=6, null=True, blank=True, help_text=help_text)


class JudgeJob(ResumableJob):
    JOB_NOUN = "judge job"
    RESUME_TASK = "generation.judge_job_run"
    RESUME_DUE_FIELD = "retry_at"  # waiting for its extra pass: due back then

    project = models.ForeignKey("annotate.Project", on_delete=models.CASCADE, related_name="judge_jobs")
    judge = models.ForeignKey(Judge, on_delete=models.CASCADE, related_name="jobs")
    rubric_version = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Guideline version the rubric was rendered from (none: no guidelines).",
    )
    rubric = models.TextField(help_text="The system prompt the judge was given.")
    sampling = models.JSONField(default=dict, blank=True, help_text="The sampling parameters used.")
    task_ids = models.JSONField(default=list, blank=True, help_text="The tasks to judge, in order.")
    total_units = models.PositiveIntegerField(default=0)
    done_units = models.PositiveIntegerField(default=0)
    failed_units = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(
        default=0, help_text="Sum over the suggestions whose token usage the server reported."
    )
    completion_tokens = models.PositiveBigIntegerField(default=0)
    usage_missing_units = models.PositiveIntegerField(
        default=0, help_text="Suggestions without token usage (the server reported none): not in the totals."
    )
    seconds = models.FloatField(default=0.0)
    cost = cost_field("Sum of the known suggestion costs (none: not priced, or no usage reported at all).")
    retried_prompt_tokens = models.PositiveBigIntegerField(
        default=0,
        help_text="Tokens of answers billed to tasks judged again after a transient failure (the failed "
        "suggestion, which held them, is replaced): in the totals.",
    )
    retried_completion_tokens = models.PositiveBigIntegerField(default=0)
    retried_cost = cost_field("The known cost of those answers (none: none priced): in the job's cost.")
    retry_passes = models.PositiveSmallIntegerField(
        default=0,
        help_text="Extra passes over transiently failed tasks scheduled so far (one per retry delay).",
    )
    retry_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="While running: the extra pass over transiently failed tasks is due then (none: not waiting).",
    )
    retry_units = models.PositiveIntegerField(
        default=0, help_text="Tasks the waiting extra pass judges again."
    )

    @property
    def judged_units(self) -> int:
        """Tasks that got an answer from the judge (``done_units`` counts the failed ones too)."""
        return max(self.done_units - self.failed_units, 0)

    @property
    def retry_waiting(self) -> bool:
        """Running, and waiting for its message to come back for an extra pass (no worker on it)."""
        return self.state == JobState.RUNNING and self.retry_at is not None

    class Meta(ResumableJob.Meta):
        constraints = [
            one_of("state", JobState, name="judgejob_state_valid"),
            models.CheckConstraint(
                condition=Q(done_units__lte=models.F("total_units")), name="judgejob_done_within_total"
            ),
        ]


class SuggestionStatus(models.TextChoices):
    OK = "ok", "Consistent"
    INCONSISTENT = "inconsistent", "Position-inconsistent"
    NOT_ALLOWED = "not_allowed", "Verdict not allowed"
    UNPARSEABLE = "unparseable", "Unparseable"
    FAILED = "failed", "Failed"


class JudgeSuggestion(models.Model):
    job = models.ForeignKey(JudgeJob, on_delete=models.CASCADE, related_name="suggestions")
    judge = models.ForeignKey(Judge, on_delete=models.CASCADE, related_name="suggestions")
    task = models.ForeignKey("annotate.Task", on_delete=models.CASCADE, related_name="judge_suggestions")
    status = models.CharField(max_length=16, choices=SuggestionStatus.choices)
    choice = models.CharField(
        max_length=8, blank=True, help_text="Canonical verdict (a = slot 0) when consistent, else empty."
    )
    strength = models.PositiveSmallIntegerField(null=True, blank=True)
    scores = models.JSONField(default=dict, blank=True, help_text="{dimension: {candidate_id: mean score}}")
    rationale = models.TextField(blank=True)
    verdict_first = models.CharField(max_length=8, blank=True, help_text="Canonical verdict, A shown first.")
    verdict_swapped = models.CharField(
        max_length=8, blank=True, help_text="Canonical verdict, B shown first."
    )
    raw_first = models.TextField(blank=True)
    raw_swapped = models.TextField(blank=True)
    error = models.TextField(blank=True)
    transient = models.BooleanField(
        default=False, help_text="Failed because the server was down or overloaded: worth judging again."
    )
    # provenance
    endpoint = models.ForeignKey(
        "generation.ModelEndpoint", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    model_name = models.CharField(max_length=300, blank=True)
    model_version = models.CharField(max_length=200, blank=True)
    rubric_version = models.PositiveIntegerField(null=True, blank=True)
    sampling = models.JSONField(default=dict, blank=True)
    # cost
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True, help_text="None: not reported.")
    completion_tokens = models.PositiveIntegerField(null=True, blank=True, help_text="None: not reported.")
    seconds = models.FloatField(default=0.0)
    cost = cost_field("None: not priced or usage unknown.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job", "task"]
        constraints = [
            models.UniqueConstraint(fields=["job", "task"], name="judgesuggestion_unique_task"),
            one_of("status", SuggestionStatus, name="judgesuggestion_status_valid"),
            models.CheckConstraint(
                condition=Q(choice="") | (Q(status="ok") & Q(choice__in=["a", "b", "tie", "both_bad"])),
                name="judgesuggestion_choice_only_when_ok",
            ),
            models.CheckConstraint(condition=strength_in_range(), name="judgesuggestion_strength_range"),
        ]
        indexes = [models.Index(fields=["task", "judge"])]

    def __str__(self) -> str:
        return f"{self.judge} on task {self.task_id}: {self.status} {self.choice}"


class Route(models.TextChoices):
    HUMAN = "human", "Humans"
    JUDGE = "judge", "Judges"


class RoutingDecision(models.Model):
    """Who labels a task under judge routing, and why (one decision per task; a manager's re-route
    withdraws and makes it again while no human worked on the task). ``details`` holds the judges'
    answers and the task's ``target_before`` / ``target_after`` routing (what re-routing gives back)."""

    project = models.ForeignKey("annotate.Project", on_delete=models.CASCADE, related_name="+")
    task = models.OneToOneField("annotate.Task", on_delete=models.CASCADE, related_name="routing")
    job = models.ForeignKey(JudgeJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="routed")
    route = models.CharField(max_length=8, choices=Route.choices)
    reason = models.CharField(max_length=32)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["task"]
        constraints = [
            one_of("route", Route, name="routing_route_valid"),
        ]
        indexes = [models.Index(fields=["project", "route"])]

    def __str__(self) -> str:
        return f"task {self.task_id} -> {self.route} ({self.reason})"


class RerouteJob(ResumableJob):
    """A manager's re-route of a project's judged tasks (``routing_reroute``), run by a worker on
    the default queue so that a large project's re-route is not bound to a web request: the
    Judges page shows its progress and, once it ends, what it changed (``outcome``, the counts of
    ``RerouteOutcome``). One at a time per project (a database constraint)."""

    JOB_NOUN = "re-route"
    RESUME_TASK = "annotate.judge_reroute"

    project = models.ForeignKey("annotate.Project", on_delete=models.CASCADE, related_name="reroute_jobs")
    total_units = models.PositiveIntegerField(default=0, help_text="Tasks in the re-route's scope.")
    done_units = models.PositiveIntegerField(default=0, help_text="Tasks whose batch has committed.")
    outcome = models.JSONField(default=dict, blank=True, help_text="What it changed (RerouteOutcome).")

    class Meta(ResumableJob.Meta):
        constraints = [
            one_of("state", JobState, name="reroutejob_state_valid"),
            models.CheckConstraint(
                condition=Q(done_units__lte=models.F("total_units")), name="reroutejob_done_within_total"
            ),
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(state__in=[JobState.QUEUED, JobState.RUNNING]),
                name="reroutejob_one_active_per_project",
            ),
        ]
