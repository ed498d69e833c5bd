"""Projects, their settings and dimensions, and membership."""

from __future__ import annotations

import math

from django.contrib.auth.models import AbstractBaseUser
from django.db import models, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils.text import slugify

from annotate.errors import Conflict, InvalidInput
from annotate.models import PROJECT_BOUNDS, Dimension, Membership, Project, Role, Task, TaskKind, TaskOrder
from annotate.models_judges import Route, RoutingDecision
from annotate.services.leasing import ASKED, assignments_release, task_target_kept, tasks_lock
from annotate.strength import strength_value
from annotate.validation import is_blank, unstorable_error
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


NAME_MAX = Project._meta.get_field("name").max_length
#: The on/off settings, as the model declares them.
_BOOLEAN_SETTINGS = tuple(
    f.name
    for f in Project._meta.get_fields()
    if f.name in SETTINGS_FIELDS and isinstance(f, models.BooleanField)
)
#: Whole-number settings: their bounds (``PROJECT_BOUNDS``, which the database checks too) and what
#: the message calls them.
_WHOLE_SETTINGS = {
    "overlap": "Overlap (distinct labelers per task)",
    "ranking_k": "Responses per ranking task",
    "rating_scale_max": "The top of the rating scale",
    "max_labels_per_task": "The cap on labels per task",
}
LEASE_TTL_RANGE = (30, 2**31 - 1)  # the column's check constraint and size


def project_name_clean(name: object, *, field: str = "name") -> str:
    """A project's name as stored: text, stripped, 1 to ``NAME_MAX`` characters, storable."""
    if name is not None and not isinstance(name, str):
        raise InvalidInput(f"A project name is text (got {str(name)[:20]!r}).", field=field)
    if not name or not name.strip():
        raise InvalidInput("A project needs a name.", field=field)
    name = name.strip()
    if len(name) > NAME_MAX:
        raise InvalidInput(
            f"A project name is at most {NAME_MAX} characters ({len(name)} given).", field=field
        )
    problem = unstorable_error(name, name="The project name")
    if problem:  # SQLite would store a NUL that PostgreSQL refuses: one rule on both
        raise InvalidInput(problem, field=field)
    return name


def project_kind_clean(kind: object) -> str:
    if kind not in TaskKind.values:
        raise InvalidInput(f"kind must be one of {', '.join(TaskKind.values)}.", field="kind")
    return kind  # type: ignore[return-value]


def _whole(value: object, field: str, low: int, high: int, what: str) -> int:
    text = value.strip() if isinstance(value, str) else ""
    digits = text[1:] if text.startswith("-") else text
    if digits.isascii() and digits.isdigit() and len(text) < 12:  # not "²" (isdigit, int refuses)
        value = int(text)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(f"{what} must be a whole number from {low} to {high} (got {str(value)[:20]!r}).",
                           field=field)  # fmt: skip
    return value


def _share(value: object, field: str, *, zero: bool, what: str) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        share = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond a float
        share = math.nan
    if not (0.0 <= share <= 1.0) or (share == 0.0 and not zero):
        raise InvalidInput(what, field=field)
    return share


def project_settings_clean(values: dict) -> dict:
    """The one rule for a project's settings, whichever way they come (the pages, the services'
    callers, a restored backup): each value checked and returned as its column stores it, or an
    ``InvalidInput`` naming the field. Unknown names are refused."""
    unknown = set(values) - set(SETTINGS_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown project setting(s): {', '.join(sorted(unknown))}.")
    clean = dict(values)
    if "name" in values:
        clean["name"] = project_name_clean(values["name"])
    if "description" in values:
        description = values["description"] if values["description"] is not None else ""
        if not isinstance(description, str):
            raise InvalidInput("The description is text.", field="description")
        problem = unstorable_error(description, name="The description")
        if problem:
            raise InvalidInput(problem, field="description")
        clean["description"] = description
    for field, what in _WHOLE_SETTINGS.items():
        if field in values:
            clean[field] = _whole(values[field], field, *PROJECT_BOUNDS[field], what)
    if "lease_ttl_seconds" in values:
        clean["lease_ttl_seconds"] = _whole(
            values["lease_ttl_seconds"], "lease_ttl_seconds", *LEASE_TTL_RANGE, "A lease's length in seconds"
        )
    for field in _BOOLEAN_SETTINGS:
        if field in values and not isinstance(values[field], bool):
            raise InvalidInput(f"{field} is true or false (got {str(values[field])[:20]!r}).", field=field)
    if "task_order" in values and values["task_order"] not in TaskOrder.values:
        raise InvalidInput(f"task_order must be one of {', '.join(TaskOrder.values)}.", field="task_order")
    if values.get("target_agreement") not in (None, ""):
        clean["target_agreement"] = _share(
            values["target_agreement"], "target_agreement", zero=False,
            what="Target agreement is a share of the labels: above 0, at most 1 (or empty for off).",
        )  # fmt: skip
    elif "target_agreement" in values:
        clean["target_agreement"] = None
    if "judge_audit_share" in values:
        clean["judge_audit_share"] = _share(
            values["judge_audit_share"], "judge_audit_share", zero=True,
            what="The audit share is a fraction between 0 and 1.",
        )  # fmt: skip
    if "judge_min_strength" in values:
        clean["judge_min_strength"] = strength_value(
            values["judge_min_strength"], field="judge_min_strength", text=True
        )
    return clean


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
    name = project_name_clean(name)
    project_kind_clean(kind)
    settings_values = project_settings_clean(settings_values)
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
    """Change settings. A new overlap applies to existing tasks too: what each task asks for moves
    by the same amount, its target never below the labelers it already has (the slots kept for
    them are given back as their leases end without a label: ``_overlap_moved``). Dimensions are
    replaced when given."""
    values = project_settings_clean(values)
    project = Project.objects.select_for_update().get(pk=project.pk)
    old_overlap = project.overlap
    old_order = project.task_order
    for field, value in values.items():
        setattr(project, field, value)
    project.save()
    delta = project.overlap - old_overlap
    if delta or project.task_order != old_order:
        tasks_lock(Task.objects.filter(project=project))  # both write every task of the project
    if delta:
        _overlap_moved(project, delta)
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


def _overlap_moved(project: Project, delta: int) -> None:
    """What every task asks for moves by ``delta`` (at least one label), except a task the AI judges
    took (routed to them: they hold its every slot, and no human should be asked); for those the
    target routing lowered from (what a re-route gives back) moves instead.

    A task's target never drops below its claims: labelers holding a slot keep it. The slots kept
    that way are remembered (``Task.kept_slots``), so the target is always what the task asks for
    (``target_labels - kept_slots``) or its claims, whichever is more: a lease that ends without
    a label gives its kept slot back (``leasing._release_claims``), one that is submitted keeps
    it as a label. The move applies to what the task asks for, not to its target: lowering the
    overlap and raising it again while a lease lives gives the task back its old target, not one
    more slot. One UPDATE computed from each row it updates, so a lease ending at the same moment
    is counted whichever commits first (the caller has locked the tasks in id order: ``leasing.tasks_lock``)."""
    judged = RoutingDecision.objects.filter(project=project, route=Route.JUDGE)
    Task.objects.filter(project=project).exclude(pk__in=judged.values("task_id")).update(
        **task_target_kept(Greatest(ASKED + delta, 1), F("claims"))
    )
    moved = []
    for decision in judged.only("pk", "details").iterator(chunk_size=2000):
        before = decision.details.get("target_before") if isinstance(decision.details, dict) else None
        if isinstance(before, int):
            decision.details = {**decision.details, "target_before": max(before + delta, 1)}
            moved.append(decision)
    RoutingDecision.objects.bulk_update(moved, ["details"], batch_size=2000)


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
    if not is_blank(guidelines or ""):  # blank (spaces, zero-width characters): no guidelines yet
        guideline_publish(project=project, actor=actor, body=guidelines, change_note="First version")
    return project
