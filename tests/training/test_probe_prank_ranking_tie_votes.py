"""Probe (rankings): a labeler who ties two responses in a ranking votes "tie" on that pair when the
export aggregates votes (``aggregate=majority`` or ``weighted``).

Before: the pairs inside a tied group were simply not made, so they were no vote at all. Three
labelers ranking responses 1, 2, 3 as "1 > 2 > 3", "1 = 2 > 3" and "1 = 2 > 3" gave the row
"1 beats 2" with 1 vote and agreement 1.0, even with ``min_agreement=0.6`` or ``min_votes=2``, and the
manifest's pairwise agreement was 1.0; the same three verdicts as A/B judgments ("a", "tie", "tie")
give a tie majority, which is dropped as a tie. Now the tied pair's votes are counted: the
majority is "tie" (dropped as ``tie``, or a tie row with ``ties=keep``), agreement 2/3, and the
pairwise agreement over the voters is the independent count below. Without aggregation the rows are
as before (no pair inside a tied group)."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from training.compiler import AnnotationRecord, CompileStats, ExportOptions, compile_pairs

TEXTS = {1: "one", 2: "two", 3: "three", 4: "four"}


def rec(task, labeler, ranking, cands=(1, 2, 3)):
    return AnnotationRecord(
        id=task * 100 + labeler,
        task_id=task,
        labeler_id=labeler,
        prompt_id=task,
        candidate_ids=tuple(cands),
        ranking=ranking,
        prompt=(f"p{task}", [{"role": "user", "content": f"q{task}"}]),
        texts=TEXTS,
    )


def run(records, **options):
    stats = CompileStats()
    groups = list(compile_pairs(records, ExportOptions.from_dict(options), stats=stats))
    return [(p.chosen, p.rejected, p.outcome, p.votes, p.agreement) for g in groups for p in g], stats


RECORDS = [
    rec(1, 1, [[1], [2], [3]]),
    rec(1, 2, [[1, 2], [3]]),
    rec(1, 3, [[1, 2], [3]]),
]


def _votes_by_hand(rankings):
    """Each labeler's verdict on every unordered pair, by hand: the better one, or "tie"."""
    out: dict[tuple[int, int], list] = {}
    for groups in rankings:
        pos = {c: i for i, g in enumerate(groups) for c in g}
        for a, b in itertools.combinations(sorted(pos), 2):
            out.setdefault((a, b), []).append("tie" if pos[a] == pos[b] else (a if pos[a] < pos[b] else b))
    return out


def test_a_tie_majority_in_rankings_is_a_tie_not_a_one_vote_preference():
    rows, stats = run(RECORDS, aggregate="majority")
    assert rows == [(1, 3, "pref", 3, 1.0), (2, 3, "pref", 3, 1.0)]
    assert stats.dropped == {"tie": 1}

    rows, _ = run(RECORDS, aggregate="majority", ties="keep")
    assert sorted(rows) == [(1, 2, "tie", 3, pytest.approx(2 / 3, abs=1e-6)), (1, 3, "pref", 3, 1.0), (2, 3, "pref", 3, 1.0)]  # fmt: skip

    rows, stats = run(RECORDS, aggregate="majority", min_votes=2, min_agreement=0.6)
    assert (1, 2) not in {(c, r) for c, r, *_ in rows}


def test_the_manifest_agreement_counts_the_tie_votes():
    _, stats = run(RECORDS, aggregate="majority")
    votes = _votes_by_hand([r.ranking for r in RECORDS])
    pairs = sum(len(v) * (len(v) - 1) // 2 for v in votes.values())
    agreeing = sum(c * (c - 1) // 2 for v in votes.values() for c in Counter(v).values())
    agreement = stats.as_dict()["agreement"]
    assert agreement["comparisons_with_2plus_votes"] == 3
    assert agreement["pairwise_agreement"] == pytest.approx(agreeing / pairs, abs=1e-6)  # 7/9


def test_a_two_response_ranking_tie_votes_like_an_ab_tie():
    ranked = [rec(1, i, g, cands=(1, 2)) for i, g in ((1, [[1], [2]]), (2, [[1, 2]]), (3, [[1, 2]]))]
    rows, stats = run(ranked, aggregate="majority")
    assert rows == [] and stats.dropped == {"tie": 1}


def test_best_vs_rest_counts_ties_in_the_best_group_only():
    records = [rec(1, 1, [[1], [2], [3]]), rec(1, 2, [[1, 2], [3]]), rec(1, 3, [[3], [1, 2]])]
    rows, stats = run(records, aggregate="majority", pairing="best_vs_rest", ties="keep")
    # (1, 2): labeler 1 says 1 > 2, labeler 2 ties them at the top (labeler 3's tie is not at the
    # top, so no vote): no majority. (1, 3): 1 wins 2 of 3. (2, 3): 2 (labeler 2) against 3 (labeler 3).
    assert rows == [(1, 3, "pref", 3, pytest.approx(2 / 3, abs=1e-6))]
    assert stats.dropped == {"no_majority": 2}


def test_without_aggregation_rows_are_unchanged():
    rows, stats = run(RECORDS)
    want = [(1, 2, "pref")] + [(1, 3, "pref"), (2, 3, "pref")] * 3
    assert sorted((c, r, o) for c, r, o, *_ in rows) == sorted(want)
    assert not stats.dropped


def test_a_final_ranking_with_a_tie_exports_as_without_aggregation():
    final = rec(1, 9, [[1, 2], [3]])
    final.source = "adjudication"
    replaced = [rec(1, i, [[1], [2], [3]]) for i in (1, 2)]
    for r in replaced:
        r.replaced = True
    for ties in ("drop", "keep"):
        plain, plain_stats = run([final, *replaced], ties=ties)
        rows, stats = run([final, *replaced], aggregate="majority", ties=ties)
        assert [r[:3] for r in rows] == [r[:3] for r in plain] == [(1, 3, "pref"), (2, 3, "pref")]
        assert stats.dropped == plain_stats.dropped == {"replaced_by_final_label": 2}
