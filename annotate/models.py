"""The annotation data model: projects, guidelines, prompts, candidates, tasks, leases, annotations.

Invariants live in the database (unique and check constraints), not in Python counting:

* one annotation per (task, labeler);
* one live lease per (task, labeler);
* a task never holds more labelers (live leases + submitted annotations) than it asks for:
  ``0 <= claims <= target_labels``;
* ``Task.kept_slots`` (slots an overlap decrease left to the labelers holding them) is 0 unless the
  task is full (``claims == target_labels``), and below ``target_labels``.

``Task.claims`` is the number of labelers who currently hold a live lease on the task or have
submitted an annotation for it. It is maintained only by ``annotate.services.leasing`` under a row
lock, which is what lets the next-task query walk one partial index instead of counting rows.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from annotate.strength import STRENGTH_RANGE, strength_in_range
from core.jobs import BackgroundJob
from core.models import Authored
from core.models_constraints import one_of


class TaskKind(models.TextChoices):
    PAIRWISE = "pairwise", "Pairwise (A/B)"
    RANKING = "ranking", "Ranking (K responses)"


class TaskOrder(models.TextChoices):
    """Which open task leasing offers next, among those with the fewest claims (always first)."""

    FEWEST_LABELS = "fewest_labels", "Fewest labels first, oldest first"
    ACTIVE = "active", "Fewest labels first, then the most informative pair"


class Role(models.TextChoices):
    LABELER = "labeler", "Labeler"
    MANAGER = "manager", "Manager"
    RESEARCHER = "researcher", "Researcher"


#: Inclusive bounds of a project's numeric settings: the database checks them (``Project.Meta``)
#: and the settings forms offer them (``project_bounds``).
PROJECT_BOUNDS: dict[str, tuple[int, int]] = {
    "overlap": (1, 100),
    "ranking_k": (2, 16),
    "rating_scale_max": (2, 10),
    "max_labels_per_task": (1, 100),
    "judge_audit_share": (0, 1),
    "judge_min_strength": STRENGTH_RANGE,
}


def project_bounds(field: str) -> dict[str, int]:
    """A form field's ``min_value`` and ``max_value`` for the project setting ``field``."""
    low, high = PROJECT_BOUNDS[field]
    return {"min_value": low, "max_value": high}


def _within_bounds(field: str, *, name: str) -> models.CheckConstraint:
    low, high = PROJECT_BOUNDS[field]
    return models.CheckConstraint(
        condition=Q(**{f"{field}__gte": low}) & Q(**{f"{field}__lte": high}), name=name
    )


class Project(Authored):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=16, choices=TaskKind.choices, default=TaskKind.PAIRWISE)
    overlap = models.PositiveSmallIntegerField(
        default=1, help_text="Distinct labelers each task needs (the default for new tasks)."
    )
    lease_ttl_seconds = models.PositiveIntegerField(
        default=900, help_text="How long a labeler holds a task before it goes back to the pool."
    )
    allow_tie = models.BooleanField(default=True)
    allow_both_bad = models.BooleanField(default=True)
    strength_scale = models.BooleanField(
        default=True, help_text="Ask how much better the preferred response is (1 slightly .. 3 much)."
    )
    ranking_k = models.PositiveSmallIntegerField(default=4, help_text="Responses per ranking task.")
    allow_rank_ties = models.BooleanField(default=False)
    rating_scale_max = models.PositiveSmallIntegerField(
        default=5, help_text="Per-dimension ratings are integers 1..this value."
    )
    task_order = models.CharField(
        max_length=16,
        choices=TaskOrder.choices,
        default=TaskOrder.FEWEST_LABELS,
        db_default=TaskOrder.FEWEST_LABELS,
        help_text="Among the tasks with the fewest labels, which to offer first.",
    )
    target_agreement = models.FloatField(
        null=True,
        blank=True,
        help_text="When a task has its labels and the share of the most common verdict is below "
        "this, it asks for one more label (up to max_labels_per_task). Empty: off.",
    )
    max_labels_per_task = models.PositiveSmallIntegerField(
        default=5,
        db_default=5,
        help_text="Cap on a task's labels when extra labels are requested automatically.",
    )
    # AI judges (annotate.judges): what labelers see of them and which pairs go to humans.
    judge_pre_annotation = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Preselect the AI judges' verdict on the labeling page (recorded per annotation).",
    )
    judge_routing = models.BooleanField(
        default=False,
        db_default=False,
        help_text="Send humans only the pairs the judges are unsure of, plus an audit share of the others.",
    )
    judge_audit_share = models.FloatField(
        default=0.1,
        db_default=0.1,
        help_text="Share of confidently judged pairs still sent to humans (0..1).",
    )
    judge_min_strength = models.PositiveSmallIntegerField(
        default=2,
        db_default=2,
        help_text="A judge preference weaker than this (1..3) is unsure and goes to humans.",
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="annotation_projects"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            _within_bounds("overlap", name="project_overlap_range"),
            models.CheckConstraint(condition=Q(lease_ttl_seconds__gte=30), name="project_lease_ttl_min"),
            _within_bounds("ranking_k", name="project_ranking_k_range"),
            _within_bounds("rating_scale_max", name="project_rating_scale_range"),
            one_of("kind", TaskKind, name="project_kind_valid"),
            one_of("task_order", TaskOrder, name="project_task_order_valid"),
            models.CheckConstraint(
                condition=Q(target_agreement__isnull=True)
                | (Q(target_agreement__gt=0) & Q(target_agreement__lte=1)),
                name="project_target_agreement_range",
            ),
            _within_bounds("max_labels_per_task", name="project_max_labels_range"),
            _within_bounds("judge_audit_share", name="project_judge_audit_share_range"),
            _within_bounds("judge_min_strength", name="project_judge_min_strength_range"),
        ]

    def __str__(self) -> str:
        return self.name


class Dimension(models.Model):
    """A rating dimension a project asks about (helpfulness, harmlessness, honesty...).

    Labelers rate each response on it, 1..project.rating_scale_max; a per-dimension preference
    between two responses is derived from those ratings at export time.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="dimensions")
    key = models.SlugField(max_length=40)
    label = models.CharField(max_length=80)
    description = models.TextField(blank=True)
    required = models.BooleanField(default=False)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "id"]
        constraints = [models.UniqueConstraint(fields=["project", "key"], name="dimension_unique_key")]

    def __str__(self) -> str:
        return self.label


class Membership(models.Model):
    """A user's role in a project. A user may hold several roles (one row each)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user", "role"], name="membership_unique_role"),
            one_of("role", Role, name="membership_role_valid"),
        ]
        indexes = [models.Index(fields=["user", "project"])]

    def __str__(self) -> str:
        return f"{self.user} {self.role} in {self.project}"


class Guideline(models.Model):
    """One immutable version of a project's labeling guidelines. The newest version is current."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="guidelines")
    version = models.PositiveIntegerField()
    body = models.TextField(help_text="Markdown.")
    change_note = models.CharField(max_length=300, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="guideline_unique_version"),
            models.CheckConstraint(condition=Q(version__gte=1), name="guideline_version_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.project} guidelines v{self.version}"


class GuidelineAck(models.Model):
    """A labeler read and acknowledged a guideline version."""

    guideline = models.ForeignKey(Guideline, on_delete=models.CASCADE, related_name="acks")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="guideline_acks"
    )
    acknowledged_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["guideline", "user"], name="guideline_ack_unique")]

    def __str__(self) -> str:
        return f"{self.user} acknowledged {self.guideline}"


class Prompt(models.Model):
    """A conversation to respond to: ``messages`` is a list of ``{"role", "content"}`` turns."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="prompts")
    external_id = models.CharField(max_length=200, blank=True)
    messages = models.JSONField()
    metadata = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "external_id"],
                condition=~Q(external_id=""),
                name="prompt_unique_external_id",
            ),
        ]

    def __str__(self) -> str:
        return self.external_id or f"prompt {self.pk}"


def link_imports_leave_empty(to: str, *, related_name: str, on_delete=models.SET_NULL) -> models.ForeignKey:
    """A link that imported rows (most rows) leave empty: nullable (by default cleared when its
    target goes), and without an index of its own, so that an import maintains none;
    ``index_where_set`` covers the rows that have one where a lookup needs it."""
    return models.ForeignKey(
        to, null=True, blank=True, on_delete=on_delete, related_name=related_name, db_index=False
    )


def index_where_set(field: str, *, name: str) -> models.Index:
    """An index on ``field`` over the rows that have it set (imported rows stay out)."""
    return models.Index(fields=[field], name=name, condition=Q(**{f"{field}__isnull": False}))


class CandidateSource(models.TextChoices):
    IMPORTED = "imported", "Imported"
    GENERATED = "generated", "Generated"


class Candidate(models.Model):
    """A response to a prompt, with where it came from."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="candidates")
    text = models.TextField()
    source = models.CharField(
        max_length=16, choices=CandidateSource.choices, default=CandidateSource.IMPORTED
    )
    model_name = models.CharField(max_length=300, blank=True)
    model_version = models.CharField(max_length=200, blank=True)
    sampling_params = models.JSONField(default=dict, blank=True)
    seed = models.BigIntegerField(null=True, blank=True)
    external_id = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # Imported candidates (most rows) have neither: the two indexes cover only the rows that have
    # one (a lookup by job uses candidate_unique_generated_sample), so an import maintains neither.
    # RESTRICT, not SET_NULL: a generated response must name its job (candidate_generated_has_job),
    # so a job goes only together with its responses (as when its project is deleted).
    generation_job = link_imports_leave_empty(
        "generation.GenerationJob", related_name="candidates", on_delete=models.RESTRICT
    )
    endpoint = link_imports_leave_empty("generation.ModelEndpoint", related_name="candidates")
    sample_index = models.PositiveIntegerField(null=True, blank=True)
    finish_reason = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # A retried or redelivered generation batch can never write a sample twice.
            models.UniqueConstraint(
                fields=["generation_job", "prompt", "endpoint", "sample_index"],
                condition=Q(generation_job__isnull=False),
                name="candidate_unique_generated_sample",
            ),
            models.CheckConstraint(
                condition=Q(source=CandidateSource.IMPORTED) | Q(generation_job__isnull=False),
                name="candidate_generated_has_job",
            ),
        ]
        indexes = [
            index_where_set("endpoint", name="candidate_endpoint_set"),
        ]

    def __str__(self) -> str:
        return f"candidate {self.pk} ({self.model_name or self.source})"


class Task(models.Model):
    """What a labeler judges: a prompt with 2 (pairwise) or K (ranking) candidates."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tasks")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="tasks")
    candidates = models.ManyToManyField(Candidate, through="TaskCandidate", related_name="tasks")
    target_labels = models.PositiveSmallIntegerField(help_text="Distinct labelers this task needs.")
    claims = models.PositiveSmallIntegerField(
        default=0,
        help_text="Labelers holding a live lease or having submitted (maintained by the leasing service).",
    )
    kept_slots = models.PositiveSmallIntegerField(
        default=0,
        db_default=0,  # bulk inserts (COPY) name only the columns they fill
        help_text="How far target_labels is above what the project asks of the task, only because "
        "labelers held those slots when its overlap was lowered (target_labels equals claims then). "
        "A lease that ends without a label gives such a slot back: the target drops with the claim.",
    )
    priority = models.FloatField(
        default=0.0,
        db_default=0.0,  # bulk inserts (COPY) name only the columns they fill
        help_text="Among tasks with equal claims, higher is offered first (task_order=active: the "
        "expected information of one more vote; 0 otherwise).",
    )
    is_gold = models.BooleanField(default=False)
    gold_choice = models.CharField(max_length=8, blank=True, help_text="Pairwise gold answer: a, b or tie.")
    gold_ranking = models.JSONField(
        null=True, blank=True, help_text="Ranking gold answer: groups of candidate ids."
    )
    # task_generation_job_set: imported tasks (no job) stay out of the index
    generation_job = link_imports_leave_empty("generation.GenerationJob", related_name="tasks")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(claims__lte=F("target_labels")), name="task_claims_within_target"
            ),
            models.CheckConstraint(condition=Q(target_labels__gte=1), name="task_target_positive"),
            # Kept slots are claimed ones (the task is full while it has any), and what the task asks
            # for without them, target_labels - kept_slots, is at least one label.
            models.CheckConstraint(
                condition=Q(kept_slots=0) | Q(claims=F("target_labels")),
                name="task_kept_slots_only_when_full",
            ),
            models.CheckConstraint(
                condition=Q(kept_slots__lt=F("target_labels")), name="task_kept_slots_below_target"
            ),
            models.CheckConstraint(
                condition=Q(gold_choice="") | Q(gold_choice__in=["a", "b", "tie"]),
                name="task_gold_choice_valid",
            ),
            models.CheckConstraint(
                condition=Q(is_gold=True) | (Q(gold_choice="") & Q(gold_ranking__isnull=True)),
                name="task_gold_answer_only_on_gold",
            ),
        ]
        indexes = [
            # The next-task query walks this index in (claims, -priority, id) order and never sees
            # full tasks (priority is 0 everywhere unless the project's task order is "active").
            models.Index(
                fields=["project", "claims", "-priority", "id"],
                name="task_open_by_claims_priority",
                condition=Q(claims__lt=F("target_labels")),
            ),
            index_where_set("generation_job", name="task_generation_job_set"),
        ]

    def __str__(self) -> str:
        return f"task {self.pk}"


class TaskCandidate(models.Model):
    """A candidate's canonical slot in a task: slot 0 is A, slot 1 is B (display order is per lease)."""

    # No index of its own on task: both unique constraints below lead with it.
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="slots", db_index=False)
    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="task_slots")
    slot = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["task", "slot"]
        constraints = [
            models.UniqueConstraint(fields=["task", "slot"], name="taskcandidate_unique_slot"),
            models.UniqueConstraint(fields=["task", "candidate"], name="taskcandidate_unique_candidate"),
        ]

    def __str__(self) -> str:
        return f"task {self.task_id} slot {self.slot}: candidate {self.candidate_id}"


class AssignmentState(models.TextChoices):
    LIVE = "live", "Live"
    SUBMITTED = "submitted", "Submitted"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Expired"
    RELEASED = "released", "Released"


class Assignment(models.Model):
    """A lease: a labeler holds a task until ``expires_at``.

    ``shown_order`` is the list of candidate ids in the order this labeler sees them (left to right,
    or top to bottom); it is randomized per lease and copied onto the annotation.
    """

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="assignments")
    labeler = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments"
    )
    state = models.CharField(max_length=16, choices=AssignmentState.choices, default=AssignmentState.LIVE)
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    shown_order = models.JSONField()
    skip_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-leased_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["task", "labeler"], condition=Q(state="live"), name="assignment_one_live_lease"
            ),
            models.CheckConstraint(
                condition=Q(expires_at__gt=F("leased_at")), name="assignment_expiry_after_lease"
            ),
            one_of("state", AssignmentState, name="assignment_state_valid"),
        ]
        indexes = [
            models.Index(fields=["task", "labeler"]),
            models.Index(fields=["expires_at"], name="assignment_live_expiry", condition=Q(state="live")),
            models.Index(fields=["labeler", "state"]),
        ]

    def __str__(self) -> str:
        return f"lease {self.pk} on task {self.task_id} by {self.labeler_id} ({self.state})"


class Choice(models.TextChoices):
    A = "a", "A is better"
    B = "b", "B is better"
    TIE = "tie", "Tie"
    BOTH_BAD = "both_bad", "Both bad"


class AnnotationSource(models.TextChoices):
    HUMAN = "human", "Labeler"
    IMPORTED = "imported", "Imported"
    JUDGE = "judge", "AI judge"


class Annotation(models.Model):
    """One labeler's judgment of one task.

    Pairwise: ``choice`` in canonical terms (a = slot 0, b = slot 1), whatever the labeler was
    shown; ``shown_order`` records what was on the left. Ranking: ``ranking`` is a list of groups
    of candidate ids, best first (a group of more than one is a tie). ``ratings`` maps a dimension
    key to ``{candidate_id: score}``. A flagged annotation may carry no choice.
    """

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="annotations")
    labeler = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="annotations"
    )
    assignment = models.OneToOneField(
        Assignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="annotation"
    )
    source = models.CharField(max_length=16, choices=AnnotationSource.choices, default=AnnotationSource.HUMAN)
    choice = models.CharField(max_length=8, choices=Choice.choices, null=True, blank=True)
    ranking = models.JSONField(null=True, blank=True)
    strength = models.PositiveSmallIntegerField(null=True, blank=True)
    ratings = models.JSONField(default=dict, blank=True)
    rationale = models.TextField(blank=True)
    flagged = models.BooleanField(default=False)
    flag_reason = models.CharField(max_length=500, blank=True)
    shown_order = models.JSONField(null=True, blank=True)
    guideline = models.ForeignKey(
        Guideline, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    pre_annotated = models.BooleanField(
        default=False,
        db_default=False,  # raw COPY imports name their columns
        help_text="The labeling page preselected an AI judge's verdict for this labeler.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["task", "labeler"], name="annotation_one_per_labeler"),
            one_of("choice", Choice, name="annotation_choice_valid", null=True),
            models.CheckConstraint(condition=strength_in_range(), name="annotation_strength_range"),
            models.CheckConstraint(
                condition=Q(strength__isnull=True) | Q(choice__in=[Choice.A, Choice.B]),
                name="annotation_strength_needs_preference",
            ),
            models.CheckConstraint(
                condition=Q(choice__isnull=False) | Q(ranking__isnull=False) | Q(flagged=True),
                name="annotation_has_judgment",
            ),
            models.CheckConstraint(
                condition=Q(flagged=False) | ~Q(flag_reason=""), name="annotation_flag_has_reason"
            ),
        ]
        indexes = [
            models.Index(fields=["labeler", "created_at"]),
            models.Index(fields=["task", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"annotation {self.pk} on task {self.task_id}"


class ReportSnapshot(BackgroundJob):
    """A computed agreement/quality report for a project, cached; recomputed by a Celery task.

    Its stored states predate the shared lifecycle: ``pending`` is queued or running, ``ready``
    is done."""

    JOB_STATES = {"queued": "pending", "running": "pending", "done": "ready", "failed": "failed"}
    JOB_FINISHED_FIELD = "computed_at"

    class State(models.TextChoices):
        PENDING = "pending", "Computing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="report_snapshots")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    data = models.JSONField(default=dict, blank=True)
    annotation_count = models.PositiveIntegerField(default=0)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    computed_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        get_latest_by = "requested_at"
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=["pending", "ready", "failed"]), name="report_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"report {self.pk} for project {self.project_id} ({self.state})"


class ApiToken(models.Model):
    """A researcher's API token. Only a SHA-256 of the secret is stored; the secret is shown once.
    A token acts for its user and reaches only that user's projects (optionally narrowed)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="First characters of the token, to recognise it.")
    digest = models.CharField(max_length=64, unique=True)
    projects = models.ManyToManyField(
        Project, blank=True, related_name="+", help_text="Empty: all the user's projects."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class AuditEventImmutable(Exception):
    """Audit events are append-only: nothing may change or delete one."""


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AuditEventImmutable("Audit events are append-only: they cannot be changed.")

    def delete(self):
        raise AuditEventImmutable("Audit events are append-only: they cannot be deleted.")


class AuditEvent(models.Model):
    """Who changed what: guidelines, membership, project settings, exports, runs, jobs.

    Append-only: the model refuses to update or delete a row (``objects`` and the instance), Django
    admin is read-only, and on PostgreSQL a trigger refuses UPDATE and DELETE (migration 0006). The
    one change let through is the database's own ON DELETE SET NULL when the project or the actor is
    deleted (Django's deletion collector goes through the plain base manager for that)."""

    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(
        max_length=64, help_text="e.g. guideline.publish, membership.add, export.create"
    )
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["project", "created_at"]),
            models.Index(fields=["action", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor} {self.action}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AuditEventImmutable("Audit events are append-only: they cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditEventImmutable("Audit events are append-only: they cannot be deleted.")


class LoginThrottle(models.Model):
    """Failed sign-in attempts per key ("user-ip:<name>|<address>" or "ip:<address>") in the
    current window, and how many consecutive lockouts the key had (each one lasts twice as long).

    Attempts are *reserved* with an atomic ``UPDATE ... SET failures = failures + 1`` before the
    password is checked, so concurrent guesses cannot slip past the limit together.
    """

    key = models.CharField(max_length=200, unique=True)
    failures = models.PositiveIntegerField(default=0)
    lockouts = models.PositiveIntegerField(default=0)
    window_started_at = models.DateTimeField()
    locked_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.failures} failures"


class OutboxMessage(models.Model):
    """A Celery message recorded in the same transaction as the change that needs it (transactional
    outbox). It is sent right after commit and deleted once the broker took it; if the broker was
    down, or the process died between commit and send, the periodic sweep sends it again (once it
    is due, for a message that waits: ``not_before``)."""

    task_name = models.CharField(max_length=200)
    args = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    not_before = models.DateTimeField(
        null=True,
        blank=True,
        help_text="The task runs no sooner than this (the message's eta); none: at once.",
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return f"{self.task_name}{tuple(self.args)}"


class ReviewVerdict(models.TextChoices):
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"


class AnnotationReview(models.Model):
    """A manager's verdict on one judgment. A rejected annotation is left out of every export
    (``rejected_in_review`` in the manifest's dropped counts); restoring it deletes the review.
    Every change is audited."""

    annotation = models.OneToOneField(Annotation, on_delete=models.CASCADE, related_name="review")
    verdict = models.CharField(max_length=16, choices=ReviewVerdict.choices)
    reason = models.CharField(max_length=500, blank=True)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            one_of("verdict", ReviewVerdict, name="review_verdict_valid"),
            models.CheckConstraint(
                condition=~Q(verdict=ReviewVerdict.REJECTED) | ~Q(reason=""), name="review_reject_has_reason"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.verdict} review of annotation {self.annotation_id}"


class Adjudication(models.Model):
    """A manager's final label for a task. Exports prefer it over the labelers' votes (option
    ``adjudication=prefer``, the default): the task then contributes this one judgment."""

    task = models.OneToOneField(Task, on_delete=models.CASCADE, related_name="adjudication")
    choice = models.CharField(max_length=8, choices=Choice.choices, null=True, blank=True)
    ranking = models.JSONField(null=True, blank=True)
    strength = models.PositiveSmallIntegerField(null=True, blank=True)
    rationale = models.TextField(blank=True)
    adjudicator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(choice__isnull=False) | Q(ranking__isnull=False), name="adjudication_has_label"
            ),
            one_of("choice", Choice, name="adjudication_choice_valid", null=True),
            models.CheckConstraint(
                condition=Q(strength__isnull=True)
                | (
                    Q(strength__gte=STRENGTH_RANGE[0])
                    & Q(strength__lte=STRENGTH_RANGE[1])
                    & Q(choice__in=[Choice.A, Choice.B])
                ),
                name="adjudication_strength_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"adjudication of task {self.task_id}"


from annotate.models_judges import (  # noqa: E402,F401  (models of annotate.judges)
    Judge,
    JudgeJob,
    JudgeSuggestion,
    RerouteJob,
    RoutingDecision,
)
