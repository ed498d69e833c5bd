"""Probe (rankings): labeler reliability (``min_reliability``, ``aggregate=weighted``,
``soft_labels``) hears a ranking's ties as "tie" votes, as the majority does since 3e13f7b.

Before: the reliability model and the leave-one-out agreement saw no vote on a pair a labeler tied.
On five tasks where labeler 1 ranked "1 > 2 > 3" and labelers 2 and 3 "1 = 2 > 3", labeler 1 had
reliability 1.0 (10 of 10: the pair 1-2, where both others tie against labeler 1, was no
comparison), and a weighted export's tie row for 1-2 carried ``p_chosen`` 0.998 from a model that
had seen only labeler 1's "1 > 2". Now labeler 1 agrees on 10 of 15 comparisons (counted by hand
below) and the soft label of the tied pair is no longer near certainty for 1."""

from __future__ import annotations

import training.compiler as tc

TEXTS = {1: "one", 2: "two", 3: "three"}


def rec(task, labeler, ranking):
    return tc.AnnotationRecord(
        id=task * 100 + labeler,
        task_id=task,
        labeler_id=labeler,
        prompt_id=task,
        candidate_ids=(1, 2, 3),
        ranking=ranking,
        prompt=(f"p{task}", [{"role": "user", "content": f"q{task}"}]),
        texts=TEXTS,
    )


RECORDS = [
    r
    for t in range(1, 6)
    for r in (rec(t, 1, [[1], [2], [3]]), rec(t, 2, [[1, 2], [3]]), rec(t, 3, [[1, 2], [3]]))
]


def test_leave_one_out_reliability_counts_tied_pairs():
    # by hand, per task: pair 1-2: labeler 1 says 1, the others tie (labeler 1 disagrees with their
    # unique majority; for labeler 2 or 3 the others are split: not compared); pairs 1-3 and 2-3:
    # everyone agrees. Five tasks.
    got = tc.labeler_reliability(RECORDS, tc.ExportOptions())
    assert got == {
        1: {"agree": 10, "compared": 15, "reliability": round(10 / 15, 6)},
        2: {"agree": 10, "compared": 10, "reliability": 1.0},
        3: {"agree": 10, "compared": 10, "reliability": 1.0},
    }


def test_min_reliability_drops_the_labeler_who_never_ties():
    stats = tc.CompileStats()
    opts = tc.ExportOptions.from_dict({"min_reliability": 0.8})
    dropped = {lid for lid, r in tc.labeler_reliability(RECORDS, opts).items() if r["reliability"] < 0.8}
    assert dropped == {1}
    rows = [p for g in tc.compile_pairs(RECORDS, opts, stats=stats, dropped_labelers=dropped) for p in g]
    assert {(p.chosen, p.rejected) for p in rows} == {(1, 3), (2, 3)}


def test_the_soft_label_of_a_tied_pair_hears_the_ties():
    opts = tc.ExportOptions.from_dict({"aggregate": "weighted", "soft_labels": True, "ties": "keep"})
    reliability = tc.fit_reliability(RECORDS, opts)
    rows = [
        p
        for g in tc.compile_pairs(RECORDS, opts, stats=tc.CompileStats(), reliability=reliability)
        for p in g
    ]
    tied = [p for p in rows if {p.chosen, p.rejected} == {1, 2}]
    assert len(tied) == 5 and all(p.outcome == "tie" for p in tied)
    assert all(p.p_chosen is not None and p.p_chosen < 0.95 for p in tied)
    assert reliability.summary()["comparisons"] == 15  # the tied pairs are comparisons of the model
