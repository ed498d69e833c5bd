"""Reads of the review page: tasks with every judgment on them, filtered the way a manager asks."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from annotate.letters import response_letter
from annotate.models import (
    Adjudication,
    Annotation,
    AnnotationReview,
    AnnotationSource,
    Assignment,
    AssignmentState,
    Choice,
    Project,
    ReviewVerdict,
    Task,
    TaskKind,
)
from annotate.selectors import counted
from annotate.strength import Strength

PAGE_SIZE = 25
# A task is "low agreement" when its most common verdict has under this share of its votes.
LOW_AGREEMENT = 0.67

STATES = ("", "unreviewed", "accepted", "rejected", "adjudicated", "skipped")
# The final-label form's strength choices (the values task_adjudicate takes).
STRENGTHS = Strength.choices
# Between the groups of a ranking on the page (a right-pointing angle quote: "B > A=C > D").
RANK_SEP = " \u203a "


@dataclass
class ReviewFilters:
    labeler: str = ""
    flagged: bool = False
    gold_failed: bool = False
    low_agreement: bool = False
    state: str = ""
    guideline: int | None = None
    min_seconds: int | None = None
    max_seconds: int | None = None
    since: date | None = None
    until: date | None = None
    page: int = 1
    errors: list[str] = field(default_factory=list)

    @classmethod
    def from_query(cls, q) -> ReviewFilters:
        f = cls(labeler=(q.get("labeler") or "").strip()[:150])
        if "\x00" in f.labeler:  # PostgreSQL text cannot hold NUL: no username has one
            f.errors.append("labeler must not contain a NUL character.")
            f.labeler = ""
        f.flagged = q.get("flagged") == "1"
        f.gold_failed = q.get("gold_failed") == "1"
        f.low_agreement = q.get("low_agreement") == "1"
        f.state = q.get("state") if q.get("state") in STATES else ""

        def number(name: str, lo: int, hi: int) -> int | None:
            raw = (q.get(name) or "").strip()
            if not raw:
                return None
            try:
                value = int(raw)
            except ValueError:
                f.errors.append(f"{name.replace('_', ' ')} must be a whole number.")
                return None
            if not lo <= value <= hi:
                f.errors.append(f"{name.replace('_', ' ')} must be between {lo} and {hi}.")
                return None
            return value

        def day(name: str) -> date | None:
            raw = (q.get(name) or "").strip()
            if not raw:
                return None
            try:
                return date.fromisoformat(raw)
            except ValueError:
                f.errors.append(f"{name} must be a date (YYYY-MM-DD).")
                return None

        f.guideline = number("guideline", 1, 1_000_000)
        f.min_seconds = number("min_seconds", 0, 10**7)
        f.max_seconds = number("max_seconds", 0, 10**7)
        f.since, f.until = day("since"), day("until")
        f.page = number("page", 1, 10**6) or 1
        # a range turned around matches nothing: say so instead of showing an empty queue
        if f.min_seconds is not None and f.max_seconds is not None and f.min_seconds > f.max_seconds:
            f.errors.append("min seconds must not be more than max seconds.")
            f.min_seconds = f.max_seconds = None
        if f.since and f.until and f.since > f.until:
            f.errors.append("since must not be after until.")
            f.since = f.until = None
        return f


def _annotation_filter(f: ReviewFilters, project: Project) -> Q:
    q = Q()
    if f.labeler:
        q &= Q(labeler__username=f.labeler)
    if f.flagged:
        q &= Q(flagged=True)
    if f.guideline:
        q &= Q(guideline__version=f.guideline)
    if f.min_seconds is not None:
        q &= Q(time_spent_ms__gte=f.min_seconds * 1000)
    if f.max_seconds is not None:
        q &= Q(time_spent_ms__lte=f.max_seconds * 1000)
    tz = timezone.get_current_timezone()
    if f.since:
        q &= Q(created_at__gte=datetime.combine(f.since, time.min, tzinfo=tz))
    if f.until:
        q &= Q(created_at__lte=datetime.combine(f.until, time.max, tzinfo=tz))
    if f.state == "unreviewed":
        q &= Q(review__isnull=True)
    elif f.state in (ReviewVerdict.ACCEPTED, ReviewVerdict.REJECTED):
        q &= Q(review__verdict=f.state)
    if f.gold_failed:
        if project.kind == TaskKind.RANKING:
            q &= Q(pk__in=_ranking_gold_misses(project))
        else:
            q &= Q(task__is_gold=True) & ~Q(choice=None) & ~Q(choice=F("task__gold_choice"))
    return q


def review_page(*, project: Project, filters: ReviewFilters) -> dict:
    """One page of tasks matching the filters, each with all its judgments (newest tasks first)."""
    tasks: QuerySet[Task] = Task.objects.filter(project=project)
    judged = _annotation_filter(filters, project) if filters.state != "skipped" else None
    if filters.state == "skipped":
        skipped = Assignment.objects.filter(task=OuterRef("pk"), state=AssignmentState.SKIPPED)
        if filters.labeler:
            skipped = skipped.filter(labeler__username=filters.labeler)
        tasks = tasks.filter(Exists(skipped))
    elif filters.state == "adjudicated":
        # tasks with a final label, narrowed by the judgment filters when any is set (a task may
        # have a final label and no judgment)
        tasks = tasks.filter(Exists(Adjudication.objects.filter(task=OuterRef("pk"))))
        if judged != Q():
            tasks = tasks.filter(Exists(Annotation.objects.filter(judged, task=OuterRef("pk"))))
    else:
        tasks = tasks.filter(Exists(Annotation.objects.filter(judged, task=OuterRef("pk"))))
    if filters.low_agreement:
        tasks = tasks.annotate(n=Count("annotations")).filter(n__gte=2)
    ids = list(tasks.order_by("-id").values_list("id", flat=True))
    if filters.low_agreement:
        ids = _low_agreement_ids(ids)
    total = len(ids)
    rows = _task_rows(
        project,
        ids[(filters.page - 1) * PAGE_SIZE : filters.page * PAGE_SIZE + 1],
        matching=judged,
    )
    has_next = len(rows) > PAGE_SIZE
    return {"tasks": rows[:PAGE_SIZE], "total": total, "page": filters.page, "has_next": has_next}


def _verdict(ann: Annotation) -> str:
    return _verdict_of(ann.choice, ann.ranking)


def _verdict_of(choice: str | None, ranking: object) -> str:
    """A judgment as a vote: the choice, or the ranking's groups best first, the responses of a tie
    in one fixed order (the labeling page shuffles them, so "A = B" arrives as [a, b] or [b, a])."""
    if choice:
        return choice
    if ranking:
        return "|".join(",".join(str(c) for c in group) for group in _ranking_key(ranking))
    return "flagged"


def _ranking_key(ranking: object) -> tuple[tuple, ...]:
    """A ranking's groups best first, each tie's responses in one fixed order: two rankings are
    the same ranking exactly when their keys are equal."""
    groups = (g if isinstance(g, list) else [g] for g in ranking or [])
    return tuple(tuple(sorted(g, key=str)) for g in groups)


def _ranking_gold_misses(project: Project) -> list[int]:
    """Ids of the judgments whose ranking differs from their gold task's gold ranking (judgments
    without a ranking, flagged ones, miss nothing). Gold tasks are few: compared here."""
    rows = Annotation.objects.filter(
        task__project=project, task__is_gold=True, task__gold_ranking__isnull=False
    ).values_list("pk", "ranking", "task__gold_ranking")
    return [
        pk for pk, ranking, gold in rows if ranking and gold and _ranking_key(ranking) != _ranking_key(gold)
    ]


def _is_vote(ann: Annotation) -> bool:
    """Whether a judgment on the card is one of the task's votes: a person's (an AI judge's label is
    shown, never counted as a person's, as in ``counted_judgments``), not rejected, with a choice
    or a ranking."""
    rejected = hasattr(ann, "review") and ann.review.verdict == ReviewVerdict.REJECTED
    return ann.source != AnnotationSource.JUDGE and not rejected and bool(ann.choice or ann.ranking)


def _agreement(votes: Counter) -> float | None:
    """The most common verdict's share of a task's votes (people's judgments with a choice or a
    ranking, rejected ones left out); None under two votes."""
    n = sum(votes.values())
    return votes.most_common(1)[0][1] / n if n >= 2 else None


LOW_AGREEMENT_CHUNK = 2000


def _low_agreement_ids(task_ids: list[int]) -> list[int]:
    """Of ``task_ids`` (in that order), the tasks whose agreement is under ``LOW_AGREEMENT``, read
    from the votes' verdicts only (as ``_is_vote``), a chunk of tasks at a time."""
    low = []
    for start in range(0, len(task_ids), LOW_AGREEMENT_CHUNK):
        chunk = task_ids[start : start + LOW_AGREEMENT_CHUNK]
        votes: dict[int, Counter] = {tid: Counter() for tid in chunk}
        rows = counted(Annotation.objects.filter(task_id__in=chunk)).values_list(
            "task_id", "choice", "ranking"
        )
        for task_id, choice, ranking in rows:
            if choice or ranking:
                votes[task_id][_verdict_of(choice, ranking)] += 1
        for tid in chunk:
            agreement = _agreement(votes[tid])
            if agreement is not None and agreement < LOW_AGREEMENT:
                low.append(tid)
    return low


def _candidate_key(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def ranking_in_letters(groups: object, letters: dict[int, str], sep: str = RANK_SEP) -> str:
    """A ranking (groups of candidate ids, best first) in the task's letters, groups joined by
    ``RANK_SEP`` and ties by "=" ("B > A=C > D", shown with angle quotes).
    With ``sep=" "`` it is what the final-label form accepts ("B A=C D"). Candidate ids are never
    shown (they leak import order): an id that is not one of the task's responses reads "?"."""
    if not isinstance(groups, list):
        return ""
    return sep.join(
        "=".join(letters.get(_candidate_key(c), "?") for c in (g if isinstance(g, list) else [g]))
        for g in groups
    )


def ratings_in_letters(ratings: object, letters: dict[int, str]) -> list[tuple[str, str]]:
    """Per dimension, the scores in letter order: [("helpful", "A 3 / B 5")]."""
    if not isinstance(ratings, dict):
        return []
    out = []
    for dim, scores in ratings.items():
        if not isinstance(scores, dict):
            continue
        lettered = sorted(
            ((letters.get(_candidate_key(cid), "?"), score) for cid, score in scores.items()),
            key=lambda pair: (pair[0] == "?", pair[0]),
        )
        out.append((str(dim), " / ".join(f"{letter} {score}" for letter, score in lettered)))
    return out


def _gold_text(task: Task, letters: dict[int, str]) -> str:
    if task.gold_ranking:
        return ranking_in_letters(task.gold_ranking, letters)
    if task.gold_choice in Choice.values:
        return str(Choice(task.gold_choice).label)
    return "no answer"


def _task_rows(project: Project, task_ids: list[int], matching: Q | None = None) -> list[dict]:
    """The tasks with every judgment; ``matching``: the filter a judgment must pass to be marked
    ``is_match`` (what the manager asked to see, selected first on the page)."""
    if not task_ids:
        return []
    matched = (
        set(Annotation.objects.filter(matching, task_id__in=task_ids).values_list("id", flat=True))
        if matching is not None and matching != Q()
        else None
    )
    tasks = {
        t.pk: t
        for t in Task.objects.filter(pk__in=task_ids)
        .select_related("prompt")
        .prefetch_related("slots__candidate")
    }
    anns: dict[int, list[Annotation]] = {}
    for ann in (
        Annotation.objects.filter(task_id__in=task_ids)
        .select_related("labeler", "guideline", "review", "review__reviewer")
        .order_by("task_id", "created_at")
    ):
        ann.is_match = matched is None or ann.pk in matched
        anns.setdefault(ann.task_id, []).append(ann)
    adjudications = {a.task_id: a for a in Adjudication.objects.filter(task_id__in=task_ids)}
    skips: dict[int, list[Assignment]] = {}
    for a in Assignment.objects.filter(task_id__in=task_ids, state=AssignmentState.SKIPPED).select_related(
        "labeler"
    ):
        skips.setdefault(a.task_id, []).append(a)
    rows = []
    for tid in task_ids:
        task = tasks.get(tid)
        if task is None:
            continue
        judged = anns.get(tid, [])
        votes = Counter(_verdict(a) for a in judged if _is_vote(a))
        agreement = _agreement(votes)
        slots = sorted(task.slots.all(), key=lambda s: s.slot)
        letters = {s.candidate_id: response_letter(i) for i, s in enumerate(slots)}
        for ann in judged:  # what the card shows: the task's letters, never candidate ids
            ann.ranking_letters = ranking_in_letters(ann.ranking, letters)
            ann.ratings_letters = ratings_in_letters(ann.ratings, letters)
        adjudication = adjudications.get(tid)
        final_ranking = getattr(adjudication, "ranking", None)
        rows.append(
            {
                "task": task,
                "is_ranking": project.kind == TaskKind.RANKING,
                "candidates": [
                    {"letter": letters[s.candidate_id], "id": s.candidate_id, "text": s.candidate.text}
                    for s in slots
                ],
                "messages": task.prompt.messages,
                "annotations": judged,
                "skips": skips.get(tid, []),
                "adjudication": adjudication,
                # The saved final ranking, to read (with RANK_SEP) and as the form takes it ("B A=C D").
                "final_ranking": ranking_in_letters(final_ranking, letters),
                "final_ranking_input": ranking_in_letters(final_ranking, letters, sep=" "),
                "gold": _gold_text(task, letters) if task.is_gold else "",
                "agreement": agreement,
                "votes": dict(votes),
            }
        )
    return rows


def review_counts(*, project: Project) -> dict:
    reviews = AnnotationReview.objects.filter(annotation__task__project=project)
    return {
        "rejected": reviews.filter(verdict=ReviewVerdict.REJECTED).count(),
        "accepted": reviews.filter(verdict=ReviewVerdict.ACCEPTED).count(),
        "adjudicated": Adjudication.objects.filter(task__project=project).count(),
    }
