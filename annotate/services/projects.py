"""Projects, their settings and dimensions, and membership."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils.text import slugify

from annotate.errors import Conflict, InvalidInput
from annotate.models import Dimension, Membership, Project, Role, Task, TaskKind, TaskOrder
from annotate.services.leasing import assignments_release
from annotate.strength import strength_value
from core.audit import audit_create
from core.db import unique_or_conflict

SETTINGS_FIELDS = (
    "name",
    "description",
    "overlap",
    "lease_ttl_seconds",
    "allow_tie",
    "allow_both_bad",
    "strength_scale",
    "ranking_k",
    "allow_rank_ties",
    "rating_scale_max",
    "task_order",
    "target_agreement",
    "max_labels_per_task",
    "judge_pre_annotation",
    "judge_routing",
    "judge_audit_share",
    "judge_min_strength",
)

# The settings of one kind of project only (a project of the other kind keeps their defaults).
KIND_SETTINGS: dict[str, tuple[str, ...]] = {
    TaskKind.PAIRWISE: ("allow_tie", "allow_both_bad", "strength_scale"),
    TaskKind.RANKING: ("ranking_k", "allow_rank_ties"),
}


def _validate_settings(values: dict) -> None:
    if "overlap" in values and not 1 <= int(values["overlap"]) <= 100:
        raise InvalidInput("Overlap must be between 1 and 100 labelers per task.", field="overlap")
    if "lease_ttl_seconds" in values and int(values["lease_ttl_seconds"]) < 30:
        raise InvalidInput("Leases must last at least 30 seconds.", field="lease_ttl_seconds")
    if "ranking_k" in values and not 2 <= int(values["ranking_k"]) <= 16:
        raise InvalidInput("Ranking tasks hold 2 to 16 responses.", field="ranking_k")
    if "rating_scale_max" in values and not 2 <= int(values["rating_scale_max"]) <= 10:
        raise InvalidInput("The rating scale goes up to between 2 and 10.", field="rating_scale_max")
    if "task_order" in values and values["task_order"] not in TaskOrder.values:
        raise InvalidInput(f"task_order must be one of {', '.join(TaskOrder.values)}.", field="task_order")
    target = values.get("target_agreement")
    if target is not None:
        try:
            target = float(target)
        except (TypeError, ValueError):
            raise InvalidInput("Target agreement must be a number.", field="target_agreement") from None
        if not 0 < target <= 1:
            raise InvalidInput(
                "Target agreement is a share of the labels: above 0, at most 1 (or empty for off).",
                field="target_agreement",
            )
    if "max_labels_per_task" in values and not 1 <= int(values["max_labels_per_task"]) <= 100:
        raise InvalidInput(
            "The cap on labels per task must be between 1 and 100.", field="max_labels_per_task"
        )
    if "judge_audit_share" in values:
        try:
            share = float(values["judge_audit_share"])
        except (TypeError, ValueError):
            share = -1.0
        if not 0.0 <= share <= 1.0:
            raise InvalidInput("The audit share is a fraction between 0 and 1.", field="judge_audit_share")
    if "judge_min_strength" in values:
        strength_value(values["judge_min_strength"], field="judge_min_strength", text=True)


# The limits of rating dimensions, for every way in (the pages, the API, backups); the key and the
# name are their columns' sizes.
MAX_DIMENSIONS = 20
DIMENSION_KEY_MAX = Dimension._meta.get_field("key").max_length
DIMENSION_LABEL_MAX = Dimension._meta.get_field("label").max_length
DIMENSION_DESCRIPTION_MAX = 2000


def _dimension_rows(dimensions: list) -> list[dict]:
    """The dimensions as rows; refuses (never cuts) a name or description too long, too many of them,
    and two whose keys (given, or the first 40 letters of the name) are the same."""
    if len(dimensions) > MAX_DIMENSIONS:
        raise InvalidInput(
            f"{MAX_DIMENSIONS} rating dimensions at most ({len(dimensions)} given).", field="dimensions"
        )
    rows = []
    seen = set()
    for i, dim in enumerate(dimensions):
        if isinstance(dim, str):
            dim = {"label": dim}
        label = str(dim.get("label") or dim.get("key") or "").strip()
        given_key = str(dim.get("key") or "")
        key = slugify(given_key or label).replace("-", "_")
        if not key or not label:
            raise InvalidInput("Each rating dimension needs a name.", field="dimensions")
        if len(label) > DIMENSION_LABEL_MAX:
            raise InvalidInput(
                f"The rating dimension name {label[:40]!r}... is longer than {DIMENSION_LABEL_MAX} characters.",
                field="dimensions",
            )
        description = str(dim.get("description", ""))
        if len(description) > DIMENSION_DESCRIPTION_MAX:
            raise InvalidInput(
                f"The description of rating dimension {label!r} is longer than "
                f"{DIMENSION_DESCRIPTION_MAX} characters.",
                field="dimensions",
            )
        if given_key and len(key) > DIMENSION_KEY_MAX:
            raise InvalidInput(
                f"The key of rating dimension {label!r} is longer than {DIMENSION_KEY_MAX} characters.",
                field="dimensions",
            )
        key = key[:DIMENSION_KEY_MAX]  # a key derived from a long name: its first 40 letters
        if key in seen:
            raise InvalidInput(
                f"Two rating dimensions have the key {key!r} (a key is the first {DIMENSION_KEY_MAX} "
                "letters of the name unless given): rename one.",
                field="dimensions",
            )
        seen.add(key)
        rows.append(
            {
                "key": key,
                "label": label,
                "description": description,
                "required": bool(dim.get("required", False)),
                "position": i,
            }
        )
    return rows


@transaction.atomic
def project_create(
    *,
    name: str,
    slug: str | None = None,
    kind: str = TaskKind.PAIRWISE,
    actor: AbstractBaseUser | None = None,
    dimensions: list | None = None,
    **settings_values,
) -> Project:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("A project needs a name.", field="name")
    if kind not in TaskKind.values:
        raise InvalidInput(f"kind must be one of {', '.join(TaskKind.values)}.", field="kind")
    unknown = set(settings_values) - set(SETTINGS_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown project setting(s): {', '.join(sorted(unknown))}.")
    _validate_settings(settings_values)
    slug = slugify(slug or name)[:80]
    if not slug:
        raise InvalidInput("The project name must contain letters or digits.", field="name")
    taken = Conflict(f"A project with the address {slug!r} already exists.", field="slug")
    with unique_or_conflict((Project.objects.filter(slug=slug), taken)):
        project = audit_create(
            Project,
            actor=actor,
            action="project.create",
            details={"kind": kind},
            name=name,
            slug=slug,
            kind=kind,
            **settings_values,
        )
    for row in _dimension_rows(dimensions or []):
        Dimension.objects.create(project=project, **row)
    if project.created_by is not None and not project.created_by.is_superuser:
        Membership.objects.create(project=project, user=project.created_by, role=Role.MANAGER)
    return project


@transaction.atomic
def project_update_settings(*, project: Project, dimensions: list | None = None, **values) -> Project:
    """Change settings. A new overlap applies to existing tasks too: each task's target moves by the
    same amount, never below the labelers it already has. Dimensions are replaced when given."""
    unknown = set(values) - set(SETTINGS_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown project setting(s): {', '.join(sorted(unknown))}.")
    _validate_settings(values)
    project = Project.objects.select_for_update().get(pk=project.pk)
    old_overlap = project.overlap
    old_order = project.task_order
    for field, value in values.items():
        setattr(project, field, value)
    project.save()
    delta = project.overlap - old_overlap
    if delta:
        Task.objects.filter(project=project).update(
            target_labels=Greatest(F("target_labels") + delta, F("claims"), 1)
        )
    if project.task_order != old_order:
        from annotate.services.task_order import task_order_changed

        task_order_changed(project=project)
    if dimensions is not None:
        rows = _dimension_rows(dimensions)
        keep = {r["key"] for r in rows}
        project.dimensions.exclude(key__in=keep).delete()
        for row in rows:
            Dimension.objects.update_or_create(project=project, key=row["key"], defaults=row)
    return project


@transaction.atomic
def membership_add(*, project: Project, user: AbstractBaseUser, role: str) -> Membership:
    if role not in Role.values:
        raise InvalidInput(f"role must be one of {', '.join(Role.values)}.", field="role")
    membership, created = Membership.objects.get_or_create(project=project, user=user, role=role)
    if not created and not membership.is_active:
        membership.is_active = True
        membership.save(update_fields=["is_active"])
    return membership


@transaction.atomic
def membership_deactivate(*, project: Project, user: AbstractBaseUser, role: str = Role.LABELER) -> int:
    """Deactivate a member's role; for labelers their live leases go back to the pool at once.
    Returns how many leases were released."""
    updated = Membership.objects.filter(project=project, user=user, role=role).update(is_active=False)
    if not updated:
        raise InvalidInput(f"{user} is not a {role} in this project.", field="user")
    if role == Role.LABELER:
        return assignments_release(project=project, labeler=user)
    return 0


@transaction.atomic
def project_start(
    *,
    actor: AbstractBaseUser,
    name: str,
    kind: str,
    guidelines: str = "",
    dimensions: list | None = None,
    **values,
) -> Project:
    """A new project from the app: the project, its dimensions, its creator as manager (a
    superuser too, so the project shows up as theirs) and, when given, guidelines v1. Each step
    audits itself (project.create, guideline.publish); all or nothing."""
    from annotate.services.guidelines import guideline_publish

    project = project_create(name=name, kind=kind, actor=actor, dimensions=dimensions, **values)
    if actor.is_superuser:
        Membership.objects.get_or_create(project=project, user=actor, role=Role.MANAGER)
    if (guidelines or "").strip():
        guideline_publish(project=project, actor=actor, body=guidelines, change_note="First version")
    return project
