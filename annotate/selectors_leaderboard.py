"""Reads of the leaderboard page: the project's votes between models, and the leaderboard on them.

Votes come from every judgment that is not rejected in review: a pairwise choice is one vote
between the models behind slots A and B (a / b / tie / both bad); a ranking gives one vote per
pair of its responses (the better-ranked wins, a tied group is a tie). Votes between two responses
of the same model say nothing about the ranking and are left out. The fit, the intervals and the
robustness line are ``annotate.leaderboard``'s (Davidson with ties and "both bad", optional style
covariates, bootstrap, fewest votes whose removal changes the top). The result is cached per
project, style setting and state of the votes (count, newest id, reviews), so reloading the page
costs a cache read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from django.core.cache import cache
from django.db.models import Count, FilteredRelation, Max, Q

from annotate.leaderboard import (
    A_WINS,
    B_WINS,
    BOTH_BAD,
    STYLE_FEATURES,
    TIE,
    Votes,
    leaderboard,
    style_covariates,
    style_features,
)
from annotate.models import AnnotationReview, Candidate, Project, TaskKind
from annotate.selectors import counted_judgments, task_slot_candidate_ids

UNKNOWN_MODEL = "(unknown model)"
BOOTSTRAP_ROUNDS = 100
# Every round is a (warm-started) refit: past this many votes x rounds the rounds shrink (never
# under 20). bench/leaderboard.py, 20k votes: 3.4 s with 25 rounds, 4.2 s with 100; most of the
# rest is the robustness search (refits at each probe). The result is cached per state of the votes.
BOOTSTRAP_BUDGET = 500_000
MIN_BOOTSTRAP_ROUNDS = 20
CACHE_SECONDS = 600
_CODE = {"a": A_WINS, "b": B_WINS, "tie": TIE, "both_bad": BOTH_BAD}


@dataclass
class ProjectVotes:
    names: list[str]
    a: list[int] = field(default_factory=list)
    b: list[int] = field(default_factory=list)
    outcome: list[int] = field(default_factory=list)
    cand_a: list[int] = field(default_factory=list)
    cand_b: list[int] = field(default_factory=list)


def _judgments(project: Project):
    return counted_judgments(project=project).order_by()


def leaderboard_votes(*, project: Project) -> ProjectVotes:
    """The project's votes between different models (model indices into ``names``, sorted)."""
    model_of = {
        cid: name or UNKNOWN_MODEL
        for cid, name in Candidate.objects.filter(prompt__project=project)
        .order_by()
        .values_list("id", "model_name")
        .iterator(chunk_size=20_000)
    }
    names = sorted(set(model_of.values()))
    index = {n: i for i, n in enumerate(names)}
    votes = ProjectVotes(names=names)

    def add(ca: int, cb: int, code: int) -> None:
        ma, mb = model_of.get(ca), model_of.get(cb)
        if ma is None or mb is None or ma == mb:
            return
        votes.a.append(index[ma])
        votes.b.append(index[mb])
        votes.outcome.append(code)
        votes.cand_a.append(ca)
        votes.cand_b.append(cb)

    if project.kind == TaskKind.PAIRWISE:
        rows = (
            _judgments(project)
            .filter(choice__isnull=False)
            .annotate(
                slot_a=FilteredRelation("task__slots", condition=Q(task__slots__slot=0)),
                slot_b=FilteredRelation("task__slots", condition=Q(task__slots__slot=1)),
            )
            .values_list("slot_a__candidate_id", "slot_b__candidate_id", "choice")
        )
        for ca, cb, choice in rows.iterator(chunk_size=20_000):
            if ca is not None and cb is not None:
                add(ca, cb, _CODE[choice])
        return votes

    slots = task_slot_candidate_ids(task__project=project)
    for task_id, ranking in (
        _judgments(project).filter(ranking__isnull=False).values_list("task_id", "ranking")
    ):
        place: dict[int, int] = {}
        for pos, group in enumerate(ranking or []):
            for cid in group if isinstance(group, list) else [group]:
                place[cid] = pos
        shown = [c for c in slots.get(task_id, []) if c in place]
        for i, ci in enumerate(shown):
            for cj in shown[i + 1 :]:
                pi, pj = place[ci], place[cj]
                add(ci, cj, TIE if pi == pj else (A_WINS if pi < pj else B_WINS))
    return votes


def _covariates(votes: ProjectVotes) -> np.ndarray:
    ids = sorted(set(votes.cand_a) | set(votes.cand_b))
    feats = {
        cid: style_features(text)
        for cid, text in Candidate.objects.filter(pk__in=ids)
        .values_list("id", "text")
        .iterator(chunk_size=2000)
    }
    fa = np.array([feats[c] for c in votes.cand_a])
    fb = np.array([feats[c] for c in votes.cand_b])
    return style_covariates(fa, fb)


def _fingerprint(project: Project) -> str:
    ann = _judgments(project).aggregate(n=Count("id"), last=Max("id"))
    rev = AnnotationReview.objects.filter(annotation__task__project=project).aggregate(
        n=Count("id"), last=Max("updated_at")
    )
    return f"{ann['n']}:{ann['last']}:{rev['n']}:{rev['last']}"


def bootstrap_rounds_for(votes: int) -> int:
    """``BOOTSTRAP_ROUNDS``, fewer for large projects (see ``BOOTSTRAP_BUDGET``)."""
    return max(MIN_BOOTSTRAP_ROUNDS, min(BOOTSTRAP_ROUNDS, BOOTSTRAP_BUDGET // max(votes, 1)))


def project_leaderboard(
    *, project: Project, style: bool = False, bootstrap_rounds: int | None = None
) -> dict:
    """The leaderboard page's data (JSON-ready): rows with ratings, intervals and W/T/L, the
    robustness line, style coefficients (when ``style``). ``bootstrap_rounds`` None: by size."""
    key = f"prefhub:leaderboard:{project.pk}:{int(style)}:{bootstrap_rounds}:{_fingerprint(project)}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    pv = leaderboard_votes(project=project)
    rounds = bootstrap_rounds or bootstrap_rounds_for(len(pv.outcome))
    data = _build(pv, style=style, bootstrap_rounds=rounds)
    cache.set(key, data, CACHE_SECONDS)
    return data


def _build(pv: ProjectVotes, *, style: bool, bootstrap_rounds: int) -> dict:
    out: dict = {"votes": len(pv.outcome), "style": style, "bootstrap": bootstrap_rounds, "rows": []}
    used = sorted(set(pv.a) | set(pv.b))
    if len(used) < 2:
        out["robustness"] = ""
        return out
    # models without a vote are left out; indices are renumbered over the ones that have some
    remap = {m: i for i, m in enumerate(used)}
    names = [pv.names[m] for m in used]
    a = np.array([remap[m] for m in pv.a])
    b = np.array([remap[m] for m in pv.b])
    outcome = np.array(pv.outcome)
    votes = Votes.build(a, b, outcome, n_models=len(names), covariates=_covariates(pv) if style else None)
    board = leaderboard(votes, names, bootstrap_rounds=bootstrap_rounds)
    n = len(names)

    def count(mask_a, mask_b) -> np.ndarray:
        return np.bincount(a[mask_a], minlength=n) + np.bincount(b[mask_b], minlength=n)

    wins = count(outcome == A_WINS, outcome == B_WINS)
    losses = count(outcome == B_WINS, outcome == A_WINS)
    ties = count(outcome == TIE, outcome == TIE)
    bad = count(outcome == BOTH_BAD, outcome == BOTH_BAD)
    rows = board.rows()
    index = {name: i for i, name in enumerate(names)}
    for r in rows:
        i = index[r["model"]]
        r.update(
            {
                "elo": r["rating"],
                "elo_low": r["rating_low"],
                "elo_high": r["rating_high"],
                "wins": int(wins[i]),
                "ties": int(ties[i]),
                "both_bad": int(bad[i]),
                "losses": int(losses[i]),
                "games": int(wins[i] + ties[i] + bad[i] + losses[i]),
            }
        )
    fit = board.fit
    out.update(
        {
            "rows": rows,
            "robustness": board.robustness_line(),
            "robustness_detail": {
                k: v for k, v in (board.robustness or {}).items() if k in ("votes_to_flip", "method")
            },
            "nu_tie": round(fit.nu_tie, 4),
            "nu_both_bad": round(fit.nu_bad, 4),
            "style_coefficients": [
                {"feature": f, "coefficient": round(float(g), 4)}
                for f, g in zip(STYLE_FEATURES, fit.gamma.tolist(), strict=False)
            ]
            if style
            else [],
        }
    )
    return out
