"""Review and adjudication of judgments by managers.

* ``annotation_review``: accept or reject (with a reason) one judgment; a rejected one is left out
  of every export. ``annotation_review_clear`` restores it (reversible).
* Nobody reviews their own judgments (a manager who also labels).
* ``task_adjudicate``: a manager's final label for a task, which exports prefer over the votes.
* Every change writes its audit event in the same transaction.
"""

from __future__ import annotations

import re

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotate.errors import InvalidInput, NotFound, OwnJudgment
from annotate.letters import response_letter
from annotate.models import (
    Adjudication,
    Annotation,
    AnnotationReview,
    Choice,
    Project,
    ReviewVerdict,
    Task,
    TaskCandidate,
    TaskKind,
)
from annotate.strength import strength_value
from annotate.validation import unstorable_error
from core.audit import audit_record

MAX_REASON = 500


def _text(value: object, field: str) -> str:
    """Free text from the review form, stripped; text that cannot be stored (a NUL) is refused."""
    text = str(value or "").strip()
    error = unstorable_error(text, name=field)
    if error is not None:
        raise InvalidInput(f"{error}.", field=field)
    return text


def _annotation(project: Project, annotation_id: int, reviewer: AbstractBaseUser) -> Annotation:
    """The project's judgment, locked until the review commits: a labeler's undo of it
    (``annotation_undo``, which locks it too) comes before, and this is ``NotFound``, or after, and
    sees the verdict. A reviewer's own judgment is ``OwnJudgment``: another manager reviews it."""
    ann = (
        Annotation.objects.select_related("task")
        .select_for_update(of=("self",), no_key=True)
        .filter(pk=annotation_id, task__project=project)
        .first()
    )
    if ann is None:
        raise NotFound("No such judgment in this project.")
    if ann.labeler_id == reviewer.pk:
        raise OwnJudgment("This is your own judgment: another manager reviews it.")
    return ann


@transaction.atomic
def annotation_review(
    *, actor: AbstractBaseUser, project: Project, annotation_id: int, verdict: str, reason: str = ""
) -> AnnotationReview:
    """Accept or reject one judgment (replacing an earlier verdict). A rejection needs a reason."""
    if verdict not in ReviewVerdict.values:
        raise InvalidInput(f"verdict must be one of {', '.join(ReviewVerdict.values)}.", field="verdict")
    reason = _text(reason, "reason")
    if verdict == ReviewVerdict.REJECTED and not reason:
        raise InvalidInput("Say why you reject this judgment.", field="reason")
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"Keep the reason under {MAX_REASON} characters.", field="reason")
    ann = _annotation(project, annotation_id, actor)
    review, _ = AnnotationReview.objects.update_or_create(
        annotation=ann, defaults={"verdict": verdict, "reason": reason, "reviewer": actor}
    )
    audit_record(
        actor=actor,
        project=project,
        action=f"annotation.{'reject' if verdict == ReviewVerdict.REJECTED else 'accept'}",
        target=ann,
        details={"reason": reason, "labeler": ann.labeler_id, "task": ann.task_id},
    )
    return review


@transaction.atomic
def annotation_review_clear(*, actor: AbstractBaseUser, project: Project, annotation_id: int) -> bool:
    """Undo a verdict: the judgment counts again as it was. Returns whether there was one."""
    ann = _annotation(project, annotation_id, actor)
    deleted, _ = AnnotationReview.objects.filter(annotation=ann).delete()
    if deleted:
        audit_record(actor=actor, project=project, action="annotation.restore", target=ann, details={})
    return bool(deleted)


def _ranking_groups(task: Task, ranking: object) -> list[list[int]]:
    """Groups of candidate ids, best first, from a list of groups of ids or from letters as a
    person types them: "B A=C" (B best, then A and C tied)."""
    ids = list(
        TaskCandidate.objects.filter(task=task).order_by("slot").values_list("candidate_id", flat=True)
    )
    if isinstance(ranking, str):
        by_letter = {response_letter(i): cid for i, cid in enumerate(ids)}
        example = f'Type the responses best first, as in "B A=C" ({", ".join(by_letter)}).'
        # whitespace around "=" goes first, so that "A >= B" keeps its stray "=" (refused below)
        parts = re.sub(r"\s*=\s*", "=", ranking.upper()).replace(",", " ").replace(">", " ").split()
        if not parts:
            raise InvalidInput(example, field="ranking")
        groups = []
        for part in parts:
            letters = part.split("=")
            if not all(letters):
                raise InvalidInput(f'"=" joins two responses that tie. {example}', field="ranking")
            unknown = [x for x in letters if x not in by_letter]
            if unknown:
                raise InvalidInput(
                    f"This task has responses {', '.join(by_letter)}; not {', '.join(unknown)}.",
                    field="ranking",
                )
            groups.append([by_letter[x] for x in letters])
        ranking = groups
    if not isinstance(ranking, list) or not ranking:
        raise InvalidInput("ranking must be a list of groups of candidate ids, best first.", field="ranking")
    groups = []
    for group in ranking:
        group = group if isinstance(group, list) else [group]
        try:
            groups.append([int(c) for c in group])
        except (TypeError, ValueError):
            raise InvalidInput("ranking holds candidate ids only.", field="ranking") from None
        if not groups[-1]:
            raise InvalidInput(
                "ranking has an empty group: each group holds one or more ids.", field="ranking"
            )
    flat = [c for g in groups for c in g]
    if sorted(flat) != sorted(ids):
        raise InvalidInput("ranking must place every response of the task exactly once.", field="ranking")
    return groups


@transaction.atomic
def task_adjudicate(
    *,
    actor: AbstractBaseUser,
    project: Project,
    task_id: int,
    choice: str | None = None,
    ranking: object = None,
    strength: int | None = None,
    rationale: str = "",
) -> Adjudication:
    """Set (or replace) the task's final label: ``choice`` (and optional ``strength`` 1-3 for a or b)
    for A/B tasks, ``ranking`` (groups of candidate ids, best first) for ranking tasks."""
    task = Task.objects.filter(pk=task_id, project=project).first()
    if task is None:
        raise NotFound("No such task in this project.")
    values: dict = {
        "choice": None,
        "ranking": None,
        "strength": None,
        "rationale": _text(rationale, "rationale")[:5000],
    }
    if project.kind == TaskKind.RANKING:
        values["ranking"] = _ranking_groups(task, ranking)
    else:
        if choice not in Choice.values:
            raise InvalidInput(f"choice must be one of {', '.join(Choice.values)}.", field="choice")
        if strength not in (None, ""):
            if choice not in (Choice.A, Choice.B):
                raise InvalidInput("A strength goes with a preference for A or B only.", field="strength")
            values["strength"] = strength_value(strength, text=True)
        values["choice"] = choice
    adjudication, _ = Adjudication.objects.update_or_create(
        task=task, defaults={**values, "adjudicator": actor}
    )
    audit_record(
        actor=actor,
        project=project,
        action="task.adjudicate",
        target=task,
        details={k: v for k, v in values.items() if v not in (None, "")},
    )
    return adjudication


@transaction.atomic
def adjudication_clear(*, actor: AbstractBaseUser, project: Project, task_id: int) -> bool:
    deleted, _ = Adjudication.objects.filter(task_id=task_id, task__project=project).delete()
    if deleted:
        audit_record(
            actor=actor, project=project, action="task.adjudication_clear", details={"task": task_id}
        )
    return bool(deleted)
