"""The preference compiler: from annotation records to preference pairs.

Pure functions over plain records (no ORM here): ``training.services.exports`` streams
``AnnotationRecord`` objects out of the database, ordered by task, and this module turns them into
pair judgments, filters, aggregates and splits them. Everything is deterministic: the same records
and options always give the same rows in the same order.

Vocabulary
----------
* A *judgment* is one labeler's verdict on one pair of candidates of one task: ``pref`` (``a``
  beats ``b``), ``tie`` or ``both_bad`` (``a``/``b`` then in slot order).
* Pairwise tasks give one judgment per annotation. Ranking tasks (``annotation.ranking`` is a list
  of groups, best first; a group of several is a tie) give pairs by the ``pairing`` option:
  ``all_pairs`` (every candidate against every candidate of a later group), ``best_vs_rest`` (the
  first group against everything after it) or ``adjacent`` (each group against the next one).
  Candidates tied inside a group never form a pair. When votes are aggregated, a labeler who tied
  two candidates (in a group the pairing compares: any group, or the first for ``best_vs_rest``)
  votes ``tie`` on them, as an A/B labeler choosing tie does.
* With ``dimension`` set, the preference is derived from ``annotation.ratings[dimension]``:
  the higher score wins, equal scores tie (pairwise) or share a group (ranking).
* ``margin`` (the strength of a preference, TRL RewardTrainer's ``margin`` column):
  ``strength / 3`` for pairwise choices with a strength (1/3, 2/3, 1), ``0.0`` without one or for
  rankings; ``score difference / (scale max - 1)`` for a dimension. Aggregated rows carry the mean
  margin of the winning votes.
* Aggregation ``majority`` makes one row per comparison (task and unordered candidate pair):
  it needs ``min_votes`` votes, a unique most common verdict, and that verdict's share of votes
  (the agreement) at least ``min_agreement``.
* Aggregation ``weighted`` is ``majority`` with each vote weighted by its labeler's weight from the
  reliability model (``annotate.reliability``, fitted over the whole export first; see
  ``fit_reliability``): the verdict with the unique largest total weight wins, and the agreement is
  its share of the total weight. A comparison whose votes all weigh 0 is dropped (``no_weight``).
* ``soft_labels`` adds ``p_chosen`` to each row: the reliability model's probability that the
  chosen candidate is preferred to the rejected one, given that one of them is
  (``q_chosen / (q_chosen + q_rejected)`` of the comparison's posterior); for a tie or both-bad
  row, the same for the first-listed response. A comparison is a reliability *item*; its slot A is
  the candidate earlier in the task's canonical slot order, and each label records whether its
  labeler saw the two the other way round (``shown_order``), so position bias is measured on
  screen positions.
* Labeler reliability: the share of a labeler's judgments that agree with the leave-one-out
  majority of the *other* labelers on the same comparison (comparisons where the others have no
  unique majority do not count). ``min_reliability`` drops labelers below the threshold; labelers
  with no shared comparison have no reliability and are kept (counted in the manifest).
* Split: by prompt, ``test`` when ``sha256(f"{seed}:{prompt_key}")`` read as a fraction in [0, 1)
  is below ``test_size``; a prompt is never on both sides, and the assignment is stable. The
  default ``test_size`` (``ExportOptions``, the one home of every export default: the service, the
  page's form and the API read it there) holds out 10% of the prompts; ``0`` exports no test split.
* Final labels (``adjudication="prefer"``): a task's final label comes as one record of source
  ``adjudication`` by the adjudicator, and the task's annotations come marked ``replaced`` (dropped
  as ``replaced_by_final_label``). Counts: ``annotations_read`` counts annotations (a final label
  is not one); labelers and guideline versions are those of the labelers' annotations that are in
  the export (an adjudicator is not a labeler); final labels and their adjudicators are counted
  apart (``final_labels``, ``adjudicators``). A final label is exported as it is: no vote threshold
  (``min_votes``, ``min_agreement``) nor labeler filter applies to it.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

from annotate.agreement import leave_one_out_agreement
from annotate.errors import InvalidInput
from annotate.validation import unstorable_error

PAIRINGS = ("all_pairs", "best_vs_rest", "adjacent")
TIE_MODES = ("drop", "keep")
AGGREGATIONS = ("none", "majority", "weighted")
# A manager's final label (annotate.models.Adjudication): "prefer" makes it the task's only
# judgment; "ignore" exports the labelers' votes as if there were none.
ADJUDICATION_MODES = ("prefer", "ignore")
# Annotations by AI judges (``source == "judge"``, annotate.judges routing): exported beside the
# humans' and marked (``labeled_by``), or left out.
JUDGE_LABEL_MODES = ("include", "exclude")
JUDGE_SOURCE = "judge"
# The source of a task's final label (annotate.models.Adjudication) in the record stream.
FINAL_LABEL_SOURCE = "adjudication"

PREF, TIE, BOTH_BAD = "pref", "tie", "both_bad"


@dataclass(frozen=True)
class ExportOptions:
    """Compiler options. ``from_dict`` validates user input and names the bad option."""

    pairing: str = "all_pairs"
    ties: str = "drop"
    aggregate: str = "none"
    min_votes: int = 1
    min_agreement: float = 0.0
    dimension: str = ""
    include_gold: bool = False
    include_flagged: bool = False
    labelers_include: tuple[int, ...] = ()
    labelers_exclude: tuple[int, ...] = ()
    min_reliability: float | None = None
    test_size: float = 0.1  # a held-out split by default: 0 exports everything as train
    seed: int = 0
    margin: bool = True
    adjudication: str = "prefer"
    soft_labels: bool = False
    judge_labels: str = "include"
    labeled_by: bool = False

    @classmethod
    def from_dict(cls, data: dict | None) -> ExportOptions:
        data = dict(data or {})
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(f"Unknown export option(s): {', '.join(unknown)}.", field=unknown[0])
        values: dict = {}

        def choice(name: str, allowed: tuple[str, ...]) -> None:
            if name in data:
                value = data[name]
                if value not in allowed:
                    raise InvalidInput(
                        f"{name} must be one of {', '.join(allowed)} (got {value!r}).", field=name
                    )
                values[name] = value

        def boolean(name: str) -> None:
            if name in data:
                value = data[name]
                if isinstance(value, str) and value.lower() in (
                    "true",
                    "false",
                    "1",
                    "0",
                    "yes",
                    "no",
                    "on",
                    "off",
                ):
                    value = value.lower() in ("true", "1", "yes", "on")
                if not isinstance(value, bool):
                    raise InvalidInput(f"{name} must be true or false.", field=name)
                values[name] = value

        def number(name: str, *, lo: float, hi: float, integer: bool = False, nullable: bool = False) -> None:
            if name not in data:
                return
            value = data[name]
            if value is None or value == "":
                if nullable:
                    values[name] = None
                    return
                raise InvalidInput(f"{name} needs a value.", field=name)
            try:
                if isinstance(value, bool):
                    raise ValueError
                parsed = int(value) if integer else float(value)
                if integer and isinstance(value, float) and not value.is_integer():
                    raise ValueError
            except (TypeError, ValueError):
                kind = "a whole number" if integer else "a number"
                raise InvalidInput(f"{name} must be {kind} (got {value!r}).", field=name) from None
            if not lo <= parsed <= hi or parsed != parsed:
                raise InvalidInput(f"{name} must be between {lo:g} and {hi:g} (got {value!r}).", field=name)
            values[name] = parsed

        def id_list(name: str) -> None:
            if name not in data:
                return
            value = data[name]
            if value is None or value == "":
                values[name] = ()
                return
            if isinstance(value, str):
                value = [v for v in value.replace(",", " ").split() if v]
            if not isinstance(value, list | tuple):
                raise InvalidInput(f"{name} must be a list of user ids.", field=name)
            try:
                if any(isinstance(v, bool) for v in value):
                    raise ValueError
                ids = sorted({int(v) for v in value})
            except (TypeError, ValueError):
                raise InvalidInput(f"{name} must be a list of user ids.", field=name) from None
            values[name] = tuple(ids)

        choice("pairing", PAIRINGS)
        choice("ties", TIE_MODES)
        choice("aggregate", AGGREGATIONS)
        choice("adjudication", ADJUDICATION_MODES)
        choice("judge_labels", JUDGE_LABEL_MODES)
        number("min_votes", lo=1, hi=1000, integer=True)
        number("min_agreement", lo=0.0, hi=1.0)
        number("min_reliability", lo=0.0, hi=1.0, nullable=True)
        number("test_size", lo=0.0, hi=0.99)
        number("seed", lo=-(2**62), hi=2**62, integer=True)
        for name in ("include_gold", "include_flagged", "margin", "soft_labels", "labeled_by"):
            boolean(name)
        id_list("labelers_include")
        id_list("labelers_exclude")
        if "dimension" in data:
            dim = data["dimension"]
            if dim is None:
                dim = ""
            if not isinstance(dim, str) or len(dim) > 40:
                raise InvalidInput("dimension must be a rating dimension key.", field="dimension")
            problem = unstorable_error(dim, name="dimension")  # it is looked up in the database
            if problem:
                raise InvalidInput(f"{problem}.", field="dimension")
            values["dimension"] = dim.strip()
        opts = cls(**values)
        if opts.aggregate == "none" and (opts.min_votes != 1 or opts.min_agreement != 0.0):
            raise InvalidInput(
                "min_votes and min_agreement apply only with aggregate=majority or weighted.",
                field="aggregate",
            )
        return opts

    def as_dict(self) -> dict:
        out = asdict(self)
        out["labelers_include"] = list(self.labelers_include)
        out["labelers_exclude"] = list(self.labelers_exclude)
        return out


@dataclass(slots=True)
class AnnotationRecord:
    """One annotation with what the compiler needs of its task and prompt.

    ``candidate_ids`` are in canonical slot order (slot 0 = A). ``prompt`` and ``texts`` are shared
    per chunk by the loader: ``prompt`` is ``(prompt_key, messages)``, ``texts`` maps candidate id to
    text.
    """

    id: int
    task_id: int
    labeler_id: int
    prompt_id: int
    candidate_ids: tuple[int, ...]
    choice: str | None = None
    ranking: list | None = None
    strength: int | None = None
    ratings: dict | None = None
    flagged: bool = False
    flag_reason: str = ""
    is_gold: bool = False
    shown_order: list | None = None
    guideline_version: int | None = None
    time_spent_ms: int | None = None
    source: str = "human"
    created_at: str = ""
    prompt: tuple[str, list] = ("", [])
    texts: dict = field(default_factory=dict)
    rejected: bool = False  # rejected in review: never exported
    replaced: bool = False  # the task has a final label, exported in its place
    pre_annotated: bool = False  # the labeling page preselected an AI judge's verdict


@dataclass(slots=True)
class Judgment:
    """One verdict on one pair: ``pref`` means ``a`` beats ``b``; otherwise a/b are in slot order."""

    task_id: int
    labeler_id: int
    a: int
    b: int
    outcome: str
    margin: float = 0.0

    @property
    def pair(self) -> tuple[int, int]:
        return (self.a, self.b) if self.a < self.b else (self.b, self.a)

    @property
    def verdict(self) -> int | str:
        """What was decided: the winner's id for a preference, else ``"tie"`` / ``"both_bad"``."""
        return self.a if self.outcome == PREF else self.outcome


@dataclass(slots=True)
class PairOut:
    """A row-to-be: a comparison of two candidates of a prompt, ready for a format."""

    record: AnnotationRecord  # a record of the task (prompt, texts, task id)
    chosen: int
    rejected: int
    outcome: str
    margin: float
    votes: int = 1
    agreement: float = 1.0
    p_chosen: float | None = None
    labeled_by: str = "human"  # "human", "judge" (every vote behind the row is a judge's) or "mixed"


@dataclass
class CompileStats:
    annotations: int = 0
    judgments: int = 0
    rows: int = 0
    rows_by_split: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    labelers: set = field(default_factory=set)  # labelers with an annotation in the export
    guideline_versions: set = field(default_factory=set)  # of those annotations
    final_labels: int = 0  # final labels (adjudications) in the export
    adjudicators: set = field(default_factory=set)
    comparisons_multi: int = 0
    agreeing_pairs: int = 0
    rater_pairs: int = 0
    majority_agreement_sum: float = 0.0
    majority_rows: int = 0

    def read(self, rec: AnnotationRecord) -> None:
        """Count a record read: a labeler's annotation (a final label is not one)."""
        if rec.source != FINAL_LABEL_SOURCE:
            self.annotations += 1

    def kept(self, rec: AnnotationRecord) -> None:
        """Count a record that is in the export: a labeler's annotation, or a final label."""
        if rec.source == FINAL_LABEL_SOURCE:
            self.final_labels += 1
            self.adjudicators.add(rec.labeler_id)
        else:
            self.labelers.add(rec.labeler_id)
            self.guideline_versions.add(rec.guideline_version)

    def as_dict(self) -> dict:
        return {
            "annotations_read": self.annotations,
            "judgments": self.judgments,
            "rows": self.rows,
            "rows_by_split": dict(sorted(self.rows_by_split.items())),
            "dropped": dict(sorted(self.dropped.items())),
            "labelers": len(self.labelers),
            "guideline_versions": sorted(v for v in self.guideline_versions if v is not None),
            "annotations_without_guideline": None in self.guideline_versions,
            "final_labels": self.final_labels,
            "adjudicators": len(self.adjudicators),
            "agreement": {
                "comparisons_with_2plus_votes": self.comparisons_multi,
                "pairwise_agreement": round(self.agreeing_pairs / self.rater_pairs, 6)
                if self.rater_pairs
                else None,
                "mean_majority_agreement": (
                    round(self.majority_agreement_sum / self.majority_rows, 6) if self.majority_rows else None
                ),
            },
        }


# --- judgments -------------------------------------------------------------------------------------


def groups_to_pairs(groups: list[list[int]], pairing: str) -> Iterator[tuple[int, int, int]]:
    """(winner, loser, group distance) pairs from ranking groups, best first. No pair inside a group."""
    if pairing == "best_vs_rest":
        head = groups[0] if groups else []
        for j, g in enumerate(groups[1:], start=1):
            for x in head:
                for y in g:
                    yield x, y, j
    elif pairing == "adjacent":
        for i in range(len(groups) - 1):
            for x in groups[i]:
                for y in groups[i + 1]:
                    yield x, y, 1
    else:
        for i, j in itertools.combinations(range(len(groups)), 2):
            for x in groups[i]:
                for y in groups[j]:
                    yield x, y, j - i


def tied_pairs(groups: list[list[int]], pairing: str) -> Iterator[tuple[int, int]]:
    """The pairs a ranking ties (two candidates in one group) among those ``pairing`` compares:
    every group for ``all_pairs`` and ``adjacent``, the first group only for ``best_vs_rest``."""
    for group in groups[:1] if pairing == "best_vs_rest" else groups:
        yield from itertools.combinations(group, 2)


def _score_groups(scores: dict, candidate_ids: tuple[int, ...]) -> tuple[list[list[int]], dict] | None:
    values = {}
    for cid in candidate_ids:
        score = scores.get(str(cid), scores.get(cid)) if isinstance(scores, dict) else None
        if not isinstance(score, int | float) or isinstance(score, bool):
            return None
        values[cid] = score
    order = sorted(candidate_ids, key=lambda c: (-values[c], candidate_ids.index(c)))
    return [list(g) for _, g in itertools.groupby(order, key=lambda c: values[c])], values


def record_judgments(
    rec: AnnotationRecord, opts: ExportOptions, *, scale_max: int = 5, tie_votes: bool = False
) -> tuple[list[Judgment], str | None]:
    """The judgments one annotation makes, or ``([], reason)`` when it makes none. ``tie_votes``
    (votes being aggregated): a ranking's tied pairs (``tied_pairs``) are tie judgments too, so
    that a labeler who tied two responses votes "tie" on them."""
    cids = rec.candidate_ids
    if opts.dimension:
        scores = (rec.ratings or {}).get(opts.dimension)
        result = _score_groups(scores, cids) if scores else None
        if result is None:
            return [], "missing_rating"
        groups, values = result
        span = max(scale_max - 1, 1)
        if len(cids) == 2 and len(groups) == 1:
            return [Judgment(rec.task_id, rec.labeler_id, cids[0], cids[1], TIE)], None
        out = [
            Judgment(rec.task_id, rec.labeler_id, w, lo, PREF, round((values[w] - values[lo]) / span, 6))
            for w, lo, _ in groups_to_pairs(groups, opts.pairing)
        ]
        if tie_votes:
            out += _tie_judgments(rec, groups, opts.pairing)
        return out, (None if out else "no_pairs")
    if rec.ranking:
        groups = [g if isinstance(g, list) else [g] for g in rec.ranking]
        out = [
            Judgment(rec.task_id, rec.labeler_id, w, lo, PREF, 0.0)
            for w, lo, _ in groups_to_pairs(groups, opts.pairing)
        ]
        if tie_votes:
            out += _tie_judgments(rec, groups, opts.pairing)
        return out, (None if out else "no_pairs")
    if rec.choice and len(cids) >= 2:
        a, b = cids[0], cids[1]
        if rec.choice == "a":
            return [Judgment(rec.task_id, rec.labeler_id, a, b, PREF, _strength_margin(rec.strength))], None
        if rec.choice == "b":
            return [Judgment(rec.task_id, rec.labeler_id, b, a, PREF, _strength_margin(rec.strength))], None
        if rec.choice in (TIE, BOTH_BAD):
            return [Judgment(rec.task_id, rec.labeler_id, a, b, rec.choice)], None
    return [], "no_judgment"


def _tie_judgments(rec: AnnotationRecord, groups: list[list[int]], pairing: str) -> list[Judgment]:
    """Tie judgments for a ranking's tied pairs, ``a``/``b`` in slot order."""
    slot = {cid: k for k, cid in enumerate(rec.candidate_ids)}
    out = []
    for x, y in tied_pairs(groups, pairing):
        a, b = (x, y) if slot.get(x, 0) <= slot.get(y, 0) else (y, x)
        out.append(Judgment(rec.task_id, rec.labeler_id, a, b, TIE))
    return out


_STRENGTH_MARGIN = {1: round(1 / 3, 6), 2: round(2 / 3, 6), 3: 1.0}


def _strength_margin(strength: int | None) -> float:
    return _STRENGTH_MARGIN.get(strength, 0.0) if strength else 0.0


def record_excluded(
    rec: AnnotationRecord, opts: ExportOptions, dropped_labelers: frozenset | set = frozenset()
) -> str | None:
    """Why this annotation is left out before any judgment is made (None: kept). A task's final
    label is kept whatever the labeler filters say: its adjudicator is no labeler."""
    if rec.source == FINAL_LABEL_SOURCE:
        return None
    if rec.replaced:
        return "replaced_by_final_label"
    if rec.rejected:
        return "rejected_in_review"
    if rec.source == JUDGE_SOURCE and opts.judge_labels == "exclude":
        return "judge_label"
    if rec.is_gold and not opts.include_gold:
        return "gold"
    if rec.flagged and not opts.include_flagged:
        return "flagged"
    if opts.labelers_include and rec.labeler_id not in opts.labelers_include:
        return "labeler_not_included"
    if rec.labeler_id in opts.labelers_exclude:
        return "labeler_excluded"
    if rec.labeler_id in dropped_labelers:
        return "low_reliability"
    return None


def by_task(records: Iterable[AnnotationRecord]) -> Iterator[list[AnnotationRecord]]:
    """Consecutive records of the same task (the loader orders by task)."""
    for _, group in itertools.groupby(records, key=lambda r: r.task_id):
        yield list(group)


def _comparisons(judgments: list[Judgment]) -> dict[tuple[int, int], list[Judgment]]:
    """Judgments of one task grouped by unordered pair, in first-seen order."""
    out: dict[tuple[int, int], list[Judgment]] = {}
    for j in judgments:
        out.setdefault(j.pair, []).append(j)
    return out


def _unique_mode(counter: Counter) -> tuple[object, int] | None:
    top = counter.most_common(2)
    if not top or (len(top) == 2 and top[0][1] == top[1][1]):
        return None
    return top[0]


def _labeled_by(sources: Iterable[str]) -> str:
    kinds = {"judge" if src == JUDGE_SOURCE else "human" for src in sources}
    return kinds.pop() if len(kinds) == 1 else "mixed"


# --- reliability --------------------------------------------------------------------------------


def _reliability_judgments(
    records: Iterable[AnnotationRecord], opts: ExportOptions, *, scale_max: int
) -> Iterator[list[tuple[AnnotationRecord, list[Judgment]]]]:
    """Per task, the annotations a labeler's reliability is learnt from, each with its judgments:
    gold and flagged annotations follow ``opts``; labeler filters do not apply (a labeler's
    reliability comes from all their work). A ranking's tied pairs are tie votes, as for the
    majority (``record_judgments``'s ``tie_votes``)."""
    base = ExportOptions(
        dimension=opts.dimension,
        pairing=opts.pairing,
        include_gold=opts.include_gold,
        include_flagged=opts.include_flagged,
        judge_labels=opts.judge_labels,
    )
    for group in by_task(records):
        yield [
            (
                rec,
                record_judgments(rec, base, scale_max=scale_max, tie_votes=rec.source != FINAL_LABEL_SOURCE)[
                    0
                ],
            )
            for rec in group
            if not record_excluded(rec, base)
        ]


def labeler_reliability(
    records: Iterable[AnnotationRecord], opts: ExportOptions, *, scale_max: int = 5
) -> dict[int, dict]:
    """Per labeler: ``{"agree": n, "compared": m, "reliability": n / m or None}``.

    Agreement with the leave-one-out majority of the other labelers on each shared comparison
    (gold and flagged annotations follow ``opts``; labeler filters do not apply here).
    """
    items: list[int] = []
    labelers: list[int] = []
    verdicts: list[int] = []
    codes: dict[object, int] = {}
    seen: set[int] = set()
    for group in _reliability_judgments(records, opts, scale_max=scale_max):
        judgments: list[Judgment] = []
        for rec, js in group:
            judgments.extend(js)
            seen.add(rec.labeler_id)
        for votes in _comparisons(judgments).values():
            if len(votes) < 2:
                continue
            item = len(items) and items[-1] + 1
            for j in votes:
                items.append(item)
                labelers.append(j.labeler_id)
                verdicts.append(codes.setdefault(j.verdict, len(codes)))
    loo = leave_one_out_agreement(items, labelers, verdicts)  # the one leave-one-out
    agreed = dict(zip(loo.labelers.tolist(), loo.agree.tolist(), strict=True))
    total = dict(zip(loo.labelers.tolist(), loo.total.tolist(), strict=True))
    out = {}
    for lid in sorted(seen):
        agree, compared = agreed.get(lid, 0), total.get(lid, 0)
        out[lid] = {
            "agree": agree,
            "compared": compared,
            "reliability": round(agree / compared, 6) if compared else None,
        }
    return out


def low_reliability_labelers(reliability: dict[int, dict], threshold: float | None) -> set[int]:
    if threshold is None:
        return set()
    return {
        lid for lid, r in reliability.items() if r["reliability"] is not None and r["reliability"] < threshold
    }


class CompilerReliability:
    """The reliability model fitted over an export's comparisons, keyed the compiler's way."""

    def __init__(self, result, items: dict[tuple[int, int, int], int], judges: set[int] | None = None):
        self.result = result
        self.items = items  # (task id, slot-A candidate, slot-B candidate) -> item id
        self.judges = set(judges or ())  # labeler ids that are AI judges (annotate.judges)
        self._weights = {
            int(lid): float(w) for lid, w in zip(result.labeler_ids, result.weights, strict=True)
        }

    def weight(self, labeler_id: int) -> float:
        return self._weights.get(labeler_id, 0.0)

    def p_chosen(self, task_id: int, chosen: int, rejected: int) -> float | None:
        """P(chosen preferred | one of the two is), or None for a comparison the model did not see."""
        from annotate.reliability import A, B

        key = (task_id, chosen, rejected)
        item = self.items.get(key)
        flipped = False
        if item is None:
            item = self.items.get((task_id, rejected, chosen))
            flipped = True
        if item is None:
            return None
        q = self.result.item_posterior(item)
        qa, qb = (q[B], q[A]) if flipped else (q[A], q[B])
        total = qa + qb
        return round(float(qa / total), 6) if total > 0 else 0.5

    def summary(self) -> dict:
        rows = self.result.labeler_estimates()
        for row in rows:
            row["is_judge"] = row["labeler_id"] in self.judges
        return {
            "model": "annotate.reliability (EM over a/b/tie/both_bad)",
            "threshold": self.result.threshold,
            "iterations": self.result.iterations,
            "converged": self.result.converged,
            "comparisons": len(self.items),
            "labelers": rows,
            "flagged": [r["labeler_id"] for r in rows if r["flagged"]],
            "judges": sorted(self.judges),
        }


def fit_reliability(
    records: Iterable[AnnotationRecord],
    opts: ExportOptions,
    *,
    scale_max: int = 5,
    threshold: float | None = None,
) -> CompilerReliability | None:
    """Fit ``annotate.reliability`` on every judgment of the export (gold and flagged annotations
    follow ``opts``; labeler filters do not apply: a labeler's weight is learnt from all their work).
    None when there is no judgment. Labels are built by ``annotate.reliability.LabelsBuilder`` (the
    agreement report fills the same one); ``threshold`` defaults to ``flag_threshold()``."""
    from annotate.reliability import LabelsBuilder

    builder = LabelsBuilder()
    for group in _reliability_judgments(records, opts, scale_max=scale_max):
        for rec, js in group:
            slot = {cid: k for k, cid in enumerate(rec.candidate_ids)}
            from_choice = not opts.dimension and rec.ranking is None and rec.choice in ("a", "b")
            for j in js:
                first, second = (j.a, j.b) if slot.get(j.a, 0) <= slot.get(j.b, 0) else (j.b, j.a)
                builder.add(
                    task_id=j.task_id,
                    labeler_id=rec.labeler_id,
                    first=first,
                    second=second,
                    verdict=("a" if j.a == first else "b") if j.outcome == PREF else j.outcome,
                    strength=rec.strength if from_choice else None,
                    shown_order=rec.shown_order,
                    judge=rec.source == JUDGE_SOURCE,
                )
    result = builder.fit(threshold=threshold)
    if result is None:
        return None
    return CompilerReliability(result, builder.items, builder.judges)


# --- split --------------------------------------------------------------------------------------


def split_of(prompt_key: str, *, seed: int, test_size: float) -> str:
    """``train`` or ``test`` for a prompt: a stable function of the prompt key and the seed."""
    if test_size <= 0:
        return "train"
    digest = hashlib.sha256(f"{seed}:{prompt_key}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_size else "train"


# --- the pipeline -------------------------------------------------------------------------------


def compile_pairs(
    records: Iterable[AnnotationRecord],
    opts: ExportOptions,
    *,
    stats: CompileStats,
    scale_max: int = 5,
    dropped_labelers: frozenset | set = frozenset(),
    keep_ties: bool | None = None,
    reliability: CompilerReliability | None = None,
) -> Iterator[list[PairOut]]:
    """Pair rows, one list per task (formats that need a whole task at once, e.g. KTO, get it).

    ``keep_ties`` overrides ``opts.ties == "keep"`` for formats that cannot hold a tie.
    ``reliability`` (from ``fit_reliability``) is required for ``aggregate="weighted"`` and
    ``soft_labels`` as soon as there is a judgment (with none, ``fit_reliability`` gives None and
    the export simply has no rows, as without those options).
    """
    needs_reliability = opts.aggregate == "weighted" or opts.soft_labels
    aggregating = opts.aggregate in ("majority", "weighted")
    keep = (opts.ties == "keep") if keep_ties is None else keep_ties
    dropped = stats.dropped
    read, kept = stats.read, stats.kept
    filtering = bool(
        opts.labelers_include or opts.labelers_exclude or dropped_labelers or opts.judge_labels == "exclude"
    )
    fast_choice = not opts.dimension  # pairwise choices are turned into judgments inline
    for group in by_task(records):
        judgments: list[Judgment] = []
        by_labeler: dict[int, AnnotationRecord] = {}
        has_final = False
        for rec in group:
            has_final = has_final or rec.source == FINAL_LABEL_SOURCE  # a task's final label
            read(rec)
            if rec.is_gold or rec.flagged or rec.rejected or rec.replaced or filtering:
                reason = record_excluded(rec, opts, dropped_labelers)
                if reason is not None:
                    dropped[reason] += 1
                    continue
            choice = rec.choice
            if fast_choice and rec.ranking is None and choice is not None and len(rec.candidate_ids) == 2:
                a, b = rec.candidate_ids
                if choice == "a":
                    judgments.append(
                        Judgment(rec.task_id, rec.labeler_id, a, b, PREF, _strength_margin(rec.strength))
                    )
                elif choice == "b":
                    judgments.append(
                        Judgment(rec.task_id, rec.labeler_id, b, a, PREF, _strength_margin(rec.strength))
                    )
                else:
                    judgments.append(Judgment(rec.task_id, rec.labeler_id, a, b, choice))
            else:
                # a final label is no vote: exported as it is, as without aggregation
                tie_votes = aggregating and rec.source != FINAL_LABEL_SOURCE
                js, reason = record_judgments(rec, opts, scale_max=scale_max, tie_votes=tie_votes)
                if not js:
                    dropped[reason] += 1
                    continue
                judgments.extend(js)
            by_labeler[rec.labeler_id] = rec
            kept(rec)
        if not judgments:
            continue
        if needs_reliability and reliability is None:
            raise ValueError("aggregate=weighted and soft_labels need a fitted reliability model")
        stats.judgments += len(judgments)
        comparisons = _comparisons(judgments) if len(judgments) > 1 or aggregating else {}
        for votes in comparisons.values():
            n = len(votes)
            if n >= 2:
                stats.comparisons_multi += 1
                tally = Counter(j.verdict for j in votes)
                stats.rater_pairs += n * (n - 1) // 2
                stats.agreeing_pairs += sum(c * (c - 1) // 2 for c in tally.values())
        out: list[PairOut] = []
        if aggregating and not has_final:  # a final label is no vote: min_votes/min_agreement do not apply
            for votes in comparisons.values():
                n = len(votes)
                if n < opts.min_votes:
                    dropped["too_few_votes"] += 1
                    continue
                if opts.aggregate == "weighted":
                    tally: Counter = Counter()
                    for j in votes:
                        tally[j.verdict] += reliability.weight(j.labeler_id)
                    total = sum(tally.values())
                    if total <= 0:
                        dropped["no_weight"] += 1
                        continue
                    mode = _unique_mode(tally)
                    if mode is None:
                        dropped["no_majority"] += 1
                        continue
                    verdict, count = mode
                    agreement = count / total
                else:
                    mode = _unique_mode(Counter(j.verdict for j in votes))
                    if mode is None:
                        dropped["no_majority"] += 1
                        continue
                    verdict, count = mode
                    agreement = count / n
                if agreement < opts.min_agreement:
                    dropped["low_agreement"] += 1
                    continue
                winners = [j for j in votes if j.verdict == verdict]
                j0 = winners[0]
                if j0.outcome != PREF and not keep:
                    dropped[j0.outcome] += 1
                    continue
                margin = round(sum(j.margin for j in winners) / len(winners), 6)
                stats.majority_rows += 1
                stats.majority_agreement_sum += agreement
                out.append(
                    PairOut(by_labeler[j0.labeler_id], j0.a, j0.b, j0.outcome, margin, n, round(agreement, 6))
                )
                out[-1].labeled_by = _labeled_by(by_labeler[j.labeler_id].source for j in winners)
                if opts.soft_labels:
                    out[-1].p_chosen = reliability.p_chosen(j0.task_id, j0.a, j0.b)
        else:
            for j in judgments:
                if j.outcome != PREF and not keep:
                    dropped[j.outcome] += 1
                    continue
                out.append(PairOut(by_labeler[j.labeler_id], j.a, j.b, j.outcome, j.margin))
                out[-1].labeled_by = _labeled_by([by_labeler[j.labeler_id].source])
                if opts.soft_labels:
                    out[-1].p_chosen = reliability.p_chosen(j.task_id, j.a, j.b)
        if out:
            yield out
