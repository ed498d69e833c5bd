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
Each raise is audited as a system action (``actor=None``), ``task.extra_label``, with the labels
it counted; undoing one of them withdraws it (``extra_label_withdraw``, ``task.extra_label_withdraw``).
"""

from __future__ import annotations

from collections import Counter

from django.db import transaction
from django.db.models import F, Value

from annotate.models import Annotation, AnnotationSource, AuditEvent, Project, Task, TaskKind, TaskOrder
from core.audit import audit_record
from core.outbox import outbox_enqueue

EXTRA_LABEL_ACTION = "task.extra_label"


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


def _counted_labels(task: Task) -> list[tuple[int, str | None]]:
    """``(annotation id, verdict or None)`` of the task's human labels not rejected in review."""
    rows = (
        Annotation.objects.filter(task=task, source=AnnotationSource.HUMAN)
        .exclude(review__verdict="rejected")
        .order_by("id")
        .values_list("id", "choice", "ranking")
    )
    return [(pk, _verdict(task.project.kind, c, r)) for pk, c, r in rows]


def _agreement(labels: list[tuple[int, str | None]]) -> tuple[int, int, float | None]:
    verdicts = [v for _, v in labels if v is not None]
    if not verdicts:
        return len(labels), 0, None
    return len(labels), len(verdicts), max(Counter(verdicts).values()) / len(verdicts)


def task_agreement(*, task: Task) -> tuple[int, int, float | None]:
    """``(labels, verdicts, share of the modal verdict)`` over the task's human labels that were
    not rejected in review (share None without a verdict)."""
    return _agreement(_counted_labels(task))


def _extra_label_warranted(
    project: Project, target_labels: int, agreement: tuple[int, int, float | None]
) -> bool:
    """The rule of an automatic raise: a task asking for ``target_labels`` labels gets one more
    when it has them all, with two or more verdicts whose modal share is below the project's
    ``target_agreement``, and ``target_labels`` is below ``max_labels_per_task``."""
    labels, verdicts, share = agreement
    target = project.target_agreement
    return (
        target is not None
        and target_labels < project.max_labels_per_task
        and labels >= target_labels
        and share is not None
        and verdicts >= 2
        and share < target - 1e-12
    )


@transaction.atomic
def task_agreement_check(*, task_id: int) -> bool:
    """Raise the task's ``target_labels`` by one when it reached its target with agreement below
    the project's ``target_agreement`` (never above ``max_labels_per_task``). Returns whether it did.
    The audit event lists the labels it counted (``annotation_ids``), so that undoing one of them
    withdraws the raise (``extra_label_withdraw``).

    Locking: the task row is locked (``SELECT ... FOR UPDATE``) for this short transaction, so two
    checks of the same task (two submits, or a message sent twice) raise it once: the second sees
    labels < target and stops. Raising a target never breaks ``claims <= target_labels``."""
    task = Task.objects.select_for_update(of=("self",)).select_related("project").filter(pk=task_id).first()
    if task is None:
        return False
    project = task.project
    if project.target_agreement is None or task.target_labels >= project.max_labels_per_task:
        return False
    counted = _counted_labels(task)
    agreement = _agreement(counted)
    if not _extra_label_warranted(project, task.target_labels, agreement):
        return False
    labels, _, share = agreement
    # one more than the task has: a slot kept from an overlap decrease (``Task.kept_slots``) is
    # an ordinary one from now on, so no lease ending later takes this raise back
    Task.objects.filter(pk=task.pk).update(target_labels=F("target_labels") + 1, kept_slots=0)
    audit_record(
        actor=None,
        project=project,
        action=EXTRA_LABEL_ACTION,
        target=task,
        details={
            "agreement": round(share, 4),
            "target_agreement": project.target_agreement,
            "labels": labels,
            "target_labels": [task.target_labels, task.target_labels + 1],
            "max_labels_per_task": project.max_labels_per_task,
            "annotation_ids": [pk for pk, _ in counted],
            "kept_slots": task.kept_slots,  # made ordinary: a withdrawal keeps them again
        },
    )
    return True


def _whole(value: object) -> int:
    """A recorded count, 0 when absent (events written before it was recorded) or not a count."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def extra_label_withdraw(*, task_id: int, annotation_id: int) -> int:
    """Withdraw the automatic raises (``task.extra_label``) that counted ``annotation_id``, a
    label just undone (``annotation_undo``, in its transaction, after deleting it). Returns by how
    much ``target_labels`` dropped.

    Newest first, one label per raise, and only while the remaining labels would not warrant that
    raise again (the check's own rule): what the task asks for drops, and a labeler already holding
    or having given a label in a withdrawn slot keeps it (``Task.kept_slots``, the one rule of
    ``leasing.task_target_kept``): the target never drops below the task's ``claims``, and such a
    slot goes when a lease ends without a label. A raise that made kept slots ordinary ones
    (its event's ``kept_slots``) gives them back as kept slots. A manager's send-back, a routing
    or overlap change is never touched: only events of the automatic check are read, and the
    target drops by what they added alone. Audited as a system action, ``task.extra_label_withdraw``
    (the raises withdrawn, the target before and after).

    Locking: the task row (``FOR NO KEY UPDATE``, which a concurrent submit's insert does not wait
    for), so no agreement check of the task runs meanwhile: a raise committed before is seen here,
    and a check after this commits no longer counts the undone label."""
    task = (
        Task.objects.select_for_update(no_key=True, of=("self",))
        .select_related("project")
        .filter(pk=task_id)
        .first()
    )
    if task is None:
        return 0
    raises = [
        event
        for event in AuditEvent.objects.filter(
            project=task.project,
            action=EXTRA_LABEL_ACTION,
            target_type=Task._meta.label_lower,
            target_id=str(task.pk),
        ).order_by("-created_at", "-id")
        if annotation_id in ((event.details or {}).get("annotation_ids") or ())
    ]
    if not raises:
        return 0
    agreement = task_agreement(task=task)
    # from what the task asks for (``Task.kept_slots`` aside); a labeler already in a withdrawn
    # slot keeps it as a kept slot, given back when a lease ends without a label
    asked = task.target_labels - task.kept_slots
    withdrawn: list[int] = []
    for event in raises:
        # the raise asked one label more and made the slots the task kept ordinary ones: it asked
        # ``1 + kept`` more; withdrawn, the task asks that much less and those slots are kept again
        kept = _whole((event.details or {}).get("kept_slots"))
        lower = asked - 1 - kept
        if lower < 1 or _extra_label_warranted(task.project, lower + kept, agreement):
            break
        asked = lower
        withdrawn.append(event.pk)
    if not withdrawn:
        return 0
    from annotate.services.leasing import task_target_kept  # leasing calls this module

    Task.objects.filter(pk=task.pk).update(**task_target_kept(Value(asked), F("claims")))
    target = max(asked, task.claims)  # as the UPDATE computes it: the claims cannot move under the lock
    audit_record(
        actor=None,
        project=task.project,
        action="task.extra_label_withdraw",
        target=task,
        details={
            "undone_annotation_id": annotation_id,
            "raise_event_ids": withdrawn,
            "labels": agreement[0],
            "target_labels": [task.target_labels, target],
        },
    )
    return task.target_labels - target
