"""Automatic extra labels when the humans disagree on a task, and the after-submit hook.

A project with ``target_agreement`` set (a share, e.g. 0.7; empty is off) asks for one more label
on a task whenever the task has all the labels it asked for and the share of the most common
verdict among its human labels is below the target, until the task reaches
``max_labels_per_task``. The check runs in the background (Celery task
``annotate.task_agreement_check``), never inside the submit's own statements: the submit only
records an outbox message in its transaction (``annotation_after_submit``), so a failed or slow
check can never fail or slow a submission, and a submit that rolls back enqueues nothing.

The verdict of a label: the canonical choice (a / b / tie / both_bad) of a pairwise task, the
top-ranked response (or tied group) of a ranking task; flagged labels without a verdict count
towards the task's labels but not towards agreement; labels rejected in review count for neither.
Each raise is audited as a system action (``actor=None``), ``task.extra_label``.
"""

from __future__ import annotations

from collections import Counter

from django.db import transaction
from django.db.models import F

from annotate.models import Annotation, AnnotationSource, Project, Task, TaskKind, TaskOrder
from core.audit import audit_record
from core.outbox import outbox_enqueue


def annotation_after_submit(*, annotation: Annotation) -> None:
    """Enqueue, in the submit's transaction and through the outbox, what must follow a human
    label: the agreement check (projects with a target agreement) and a debounced priority
    refresh (task order "active"). Writes nothing for projects that use neither."""
    if annotation.source != AnnotationSource.HUMAN:
        return
    if Annotation.task.is_cached(annotation) and Task.project.is_cached(annotation.task):
        project = annotation.task.project
    else:
        project = Project.objects.filter(tasks=annotation.task_id).first()
    if project is None:
        return
    if project.target_agreement is not None:
        outbox_enqueue("annotate.task_agreement_check", annotation.task_id)
    if project.task_order == TaskOrder.ACTIVE:
        from annotate.services.task_order import task_priorities_request

        task_priorities_request(project=project)


def _verdict(kind: str, choice: str | None, ranking: list | None) -> str | None:
    if kind == TaskKind.PAIRWISE:
        return choice
    if ranking:
        top = ranking[0] if isinstance(ranking[0], list) else [ranking[0]]
        return ",".join(str(c) for c in sorted(top))
    return None


def task_agreement(*, task: Task) -> tuple[int, int, float | None]:
    """``(labels, verdicts, share of the modal verdict)`` over the task's human labels that were
    not rejected in review (share None without a verdict)."""
    rows = list(
        Annotation.objects.filter(task=task, source=AnnotationSource.HUMAN)
        .exclude(review__verdict="rejected")
        .values_list("choice", "ranking")
    )
    verdicts = [v for c, r in rows if (v := _verdict(task.project.kind, c, r)) is not None]
    if not verdicts:
        return len(rows), 0, None
    return len(rows), len(verdicts), max(Counter(verdicts).values()) / len(verdicts)


@transaction.atomic
def task_agreement_check(*, task_id: int) -> bool:
    """Raise the task's ``target_labels`` by one when it reached its target with agreement below
    the project's ``target_agreement`` (never above ``max_labels_per_task``). Returns whether it did.

    Locking: the task row is locked (``SELECT ... FOR UPDATE``) for this short transaction, so two
    checks of the same task (two submits, or a message sent twice) raise it once: the second sees
    labels < target and stops. Raising a target never breaks ``claims <= target_labels``."""
    task = Task.objects.select_for_update(of=("self",)).select_related("project").filter(pk=task_id).first()
    if task is None:
        return False
    project = task.project
    target = project.target_agreement
    if target is None or task.target_labels >= project.max_labels_per_task:
        return False
    labels, verdicts, share = task_agreement(task=task)
    if labels < task.target_labels or share is None or verdicts < 2 or share >= target - 1e-12:
        return False
    Task.objects.filter(pk=task.pk).update(target_labels=F("target_labels") + 1)
    audit_record(
        actor=None,
        project=project,
        action="task.extra_label",
        target=task,
        details={
            "agreement": round(share, 4),
            "target_agreement": target,
            "labels": labels,
            "target_labels": [task.target_labels, task.target_labels + 1],
            "max_labels_per_task": project.max_labels_per_task,
        },
    )
    return True
