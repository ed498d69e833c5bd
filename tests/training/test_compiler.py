"""The preference compiler on plain records: pairing, ties, aggregation, dimensions, filters,
reliability, split. No database."""

from __future__ import annotations

import pytest

from annotate.errors import InvalidInput
from training.compiler import (
    AnnotationRecord,
    CompileStats,
    ExportOptions,
    compile_pairs,
    groups_to_pairs,
    labeler_reliability,
    low_reliability_labelers,
    split_of,
)
from training.formats import TrlUnpaired, hh_transcript, prompt_text

TEXTS = {1: "one", 2: "two", 3: "three", 4: "four"}


def rec(task, labeler, *, cands=(1, 2), **kw) -> AnnotationRecord:
    kw.setdefault("prompt", (f"p{task}", [{"role": "user", "content": f"q{task}"}]))
    return AnnotationRecord(
        id=task * 100 + labeler, task_id=task, labeler_id=labeler, prompt_id=task, candidate_ids=tuple(cands),
        texts=TEXTS, **kw,
    )  # fmt: skip


def run(records, **options):
    stats = CompileStats()
    groups = list(compile_pairs(records, ExportOptions.from_dict(options), stats=stats))
    return [p for g in groups for p in g], stats


def triples(pairs):
    return [(p.chosen, p.rejected, p.outcome) for p in pairs]


# --- ranking to pairs ---------------------------------------------------------------------------


def test_ranking_pairings_never_pair_inside_a_tied_group():
    groups = [[1], [2, 3], [4]]
    assert [(w, lo) for w, lo, _ in groups_to_pairs(groups, "all_pairs")] == [
        (1, 2),
        (1, 3),
        (1, 4),
        (2, 4),
        (3, 4),
    ]
    assert [(w, lo) for w, lo, _ in groups_to_pairs(groups, "best_vs_rest")] == [(1, 2), (1, 3), (1, 4)]
    assert [(w, lo) for w, lo, _ in groups_to_pairs(groups, "adjacent")] == [(1, 2), (1, 3), (2, 4), (3, 4)]
    assert list(groups_to_pairs([[1, 2]], "all_pairs")) == []


def test_ranking_annotation_expands_by_pairing_option():
    r = rec(1, 7, cands=(3, 1, 4, 2), ranking=[[4], [1, 2], [3]])
    pairs, _ = run([r], pairing="all_pairs")
    assert triples(pairs) == [(4, 1, "pref"), (4, 2, "pref"), (4, 3, "pref"), (1, 3, "pref"), (2, 3, "pref")]
    pairs, _ = run([r], pairing="adjacent")
    assert triples(pairs) == [(4, 1, "pref"), (4, 2, "pref"), (1, 3, "pref"), (2, 3, "pref")]
    pairs, _ = run([r], pairing="best_vs_rest")
    assert [(p.chosen, p.rejected) for p in pairs] == [(4, 1), (4, 2), (4, 3)]


def test_all_tied_ranking_is_dropped_with_a_reason():
    pairs, stats = run([rec(1, 7, cands=(1, 2), ranking=[[1, 2]])])
    assert pairs == [] and stats.dropped == {"no_pairs": 1}


# --- pairwise choices, ties, margins --------------------------------------------------------------


def test_pairwise_choice_maps_canonical_slots_and_strength_to_margin():
    pairs, _ = run([rec(1, 1, cands=(2, 1), choice="a", strength=3), rec(2, 1, cands=(2, 1), choice="b")])
    assert triples(pairs) == [(2, 1, "pref"), (1, 2, "pref")]
    assert [p.margin for p in pairs] == [1.0, 0.0]


def test_ties_and_both_bad_dropped_by_default_kept_as_flagged_when_asked():
    records = [rec(1, 1, choice="tie"), rec(2, 1, choice="both_bad"), rec(3, 1, choice="a")]
    pairs, stats = run(records)
    assert triples(pairs) == [(1, 2, "pref")]
    assert stats.dropped == {"tie": 1, "both_bad": 1}
    pairs, stats = run(records, ties="keep")
    assert triples(pairs) == [(1, 2, "tie"), (1, 2, "both_bad"), (1, 2, "pref")]
    assert not stats.dropped


def test_kto_rows_turn_both_bad_into_two_undesirable_completions_and_skip_ties():
    pairs, _ = run(
        [rec(1, 1, choice="both_bad"), rec(2, 1, choice="tie"), rec(3, 1, choice="b")], ties="keep"
    )
    fmt = TrlUnpaired(ExportOptions(ties="keep"))
    rows = [row for p in pairs for row in fmt.rows([p])]
    assert [(r["completion"], r["label"]) for r in rows] == [
        ("one", False),
        ("two", False),
        ("two", True),
        ("one", False),
    ]


def test_kto_rows_name_each_candidate_once_per_task():
    pairs, _ = run([rec(1, 1, cands=(1, 2, 3), ranking=[[1], [2], [3]])], pairing="best_vs_rest")
    rows = list(TrlUnpaired(ExportOptions()).rows(pairs))
    assert [(r["completion"], r["label"]) for r in rows] == [("one", True), ("two", False), ("three", False)]


# --- filters ----------------------------------------------------------------------------------------


def test_gold_flagged_and_labeler_filters():
    records = [
        rec(1, 1, choice="a", is_gold=True),
        rec(2, 1, choice="a", flagged=True, flag_reason="broken"),
        rec(3, 1, flagged=True, flag_reason="no choice"),
        rec(4, 2, choice="a"),
        rec(5, 3, choice="b"),
    ]
    pairs, stats = run(records)
    assert len(pairs) == 2 and stats.dropped == {"gold": 1, "flagged": 2}
    pairs, stats = run(records, include_gold=True, include_flagged=True)
    assert len(pairs) == 4 and stats.dropped == {"no_judgment": 1}
    pairs, stats = run(records, labelers_include=[2])
    assert [p.record.labeler_id for p in pairs] == [2]
    pairs, stats = run(records, labelers_exclude="2, 3")
    assert pairs == [] and stats.dropped["labeler_excluded"] == 2


# --- dimensions -------------------------------------------------------------------------------------


def test_dimension_preference_from_ratings_higher_wins_equal_ties():
    records = [
        rec(1, 1, choice="a", ratings={"harmless": {"1": 2, "2": 5}}),
        rec(2, 1, choice="a", ratings={"harmless": {"1": 4, "2": 4}}),
        rec(3, 1, choice="a", ratings={"helpful": {"1": 4, "2": 1}}),
    ]
    pairs, stats = run(records, dimension="harmless", ties="keep")
    assert triples(pairs) == [(2, 1, "pref"), (1, 2, "tie")]
    assert pairs[0].margin == 0.75  # (5 - 2) / (5 - 1)
    assert stats.dropped == {"missing_rating": 1}


def test_dimension_on_a_ranking_task_groups_equal_scores():
    r = rec(1, 1, cands=(1, 2, 3), ranking=[[1], [2], [3]], ratings={"h": {"1": 1, "2": 3, "3": 3}})
    pairs, _ = run([r], dimension="h")
    assert triples(pairs) == [(2, 1, "pref"), (3, 1, "pref")]


# --- aggregation ------------------------------------------------------------------------------------


def test_every_judgment_is_a_row_without_aggregation():
    records = [rec(1, u, choice=c) for u, c in ((1, "a"), (2, "a"), (3, "b"))]
    pairs, stats = run(records)
    assert triples(pairs) == [(1, 2, "pref"), (1, 2, "pref"), (2, 1, "pref")]
    assert stats.as_dict()["agreement"]["pairwise_agreement"] == pytest.approx(1 / 3)


def test_majority_aggregation_with_min_votes_and_agreement():
    records = [
        *(
            rec(1, u, choice=c, strength=s) for u, c, s in ((1, "a", 3), (2, "a", 1), (3, "b", 2))
        ),  # 2/3 for 1
        *(rec(2, u, choice=c) for u, c in ((1, "a"), (2, "b"))),  # split: no majority
        rec(3, 1, choice="b"),  # one vote
        *(rec(4, u, choice="tie") for u in (1, 2, 3)),  # unanimous tie
    ]
    pairs, stats = run(records, aggregate="majority", min_votes=2)
    assert triples(pairs) == [(1, 2, "pref")]
    assert pairs[0].votes == 3 and pairs[0].agreement == pytest.approx(0.666667)
    assert pairs[0].margin == pytest.approx((1.0 + 1 / 3) / 2, abs=1e-6)
    assert stats.dropped == {"no_majority": 1, "too_few_votes": 1, "tie": 1}
    pairs, stats = run(records, aggregate="majority", min_votes=2, min_agreement=0.7, ties="keep")
    assert triples(pairs) == [(1, 2, "tie")]
    assert stats.dropped["low_agreement"] == 1


def test_majority_of_a_ranking_task_is_per_candidate_pair():
    records = [
        rec(1, 1, cands=(1, 2, 3), ranking=[[1], [2], [3]]),
        rec(1, 2, cands=(1, 2, 3), ranking=[[2], [1], [3]]),
        rec(1, 3, cands=(1, 2, 3), ranking=[[1], [3], [2]]),
    ]
    pairs, _ = run(records, aggregate="majority", min_votes=3)
    assert sorted((p.chosen, p.rejected, p.votes) for p in pairs) == [(1, 2, 3), (1, 3, 3), (2, 3, 3)]


# --- reliability ------------------------------------------------------------------------------------


def test_reliability_is_agreement_with_the_leave_one_out_majority():
    # labelers 1, 2, 3 agree on every task; labeler 4 always disagrees; labeler 5 shares no task.
    records = []
    for task in range(1, 5):
        for u in (1, 2, 3):
            records.append(rec(task, u, choice="a"))
        records.append(rec(task, 4, choice="b"))
    records.append(rec(9, 5, choice="a"))
    rel = labeler_reliability(records, ExportOptions())
    assert rel[1] == {"agree": 4, "compared": 4, "reliability": 1.0}
    assert rel[4]["reliability"] == 0.0
    assert rel[5]["reliability"] is None
    assert low_reliability_labelers(rel, 0.5) == {4}
    opts = ExportOptions(min_reliability=0.5)
    stats = CompileStats()
    pairs = [p for g in compile_pairs(records, opts, stats=stats, dropped_labelers={4}) for p in g]
    assert {p.record.labeler_id for p in pairs} == {1, 2, 3, 5}
    assert stats.dropped == {"low_reliability": 4}


# --- split, options, rendering ------------------------------------------------------------------------


def test_split_is_by_prompt_stable_and_seeded():
    keys = [f"p{i}" for i in range(2000)]
    a = {k: split_of(k, seed=1, test_size=0.2) for k in keys}
    assert a == {k: split_of(k, seed=1, test_size=0.2) for k in keys}
    share = sum(v == "test" for v in a.values()) / len(keys)
    assert 0.17 < share < 0.23
    assert a != {k: split_of(k, seed=2, test_size=0.2) for k in keys}
    assert all(split_of(k, seed=1, test_size=0) == "train" for k in keys[:50])


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"pairing": "random"}, "pairing"),
        ({"ties": "maybe"}, "ties"),
        ({"aggregate": "mean"}, "aggregate"),
        ({"aggregate": "majority", "min_votes": 0}, "min_votes"),
        ({"aggregate": "majority", "min_agreement": 1.5}, "min_agreement"),
        ({"min_votes": 2}, "aggregate"),
        ({"test_size": "half"}, "test_size"),
        ({"test_size": 1}, "test_size"),
        ({"min_reliability": -0.1}, "min_reliability"),
        ({"labelers_exclude": ["bob"]}, "labelers_exclude"),
        ({"include_gold": "perhaps"}, "include_gold"),
        ({"colour": "blue"}, "colour"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_bad_options_name_the_option(options, field):
    with pytest.raises(InvalidInput) as err:
        ExportOptions.from_dict(options)
    assert err.value.field == field


def test_options_round_trip_through_their_dict():
    opts = ExportOptions.from_dict(
        {"aggregate": "majority", "min_votes": "2", "labelers_include": "3,1", "margin": "false"}
    )
    assert opts.min_votes == 2 and opts.labelers_include == (1, 3) and opts.margin is False
    assert ExportOptions.from_dict(opts.as_dict()) == opts


def test_prompt_rendering_and_hh_transcripts():
    assert prompt_text([{"role": "user", "content": "Hi?"}]) == "Hi?"
    convo = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Bye?"},
    ]
    assert (
        prompt_text(convo) == "System: Be brief.\n\nUser: Hi\n\nAssistant: Hello\n\nUser: Bye?\n\nAssistant:"
    )
    from annotate.services.imports import parse_hh_transcript

    turns = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    text = hh_transcript(turns, "d")
    assert text == "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d"
    assert parse_hh_transcript(text) == [*turns, {"role": "assistant", "content": "d"}]


def test_reliability_matches_the_agreement_module_leave_one_out():
    """The compiler's streaming reliability (O(labelers) memory) gives the same figures as
    annotate.agreement.leave_one_out_agreement (vectorised, in memory) on the same judgments."""
    agreement = pytest.importorskip("annotate.agreement")
    import random

    rng = random.Random(7)
    records = []
    for task in range(1, 120):
        for u in rng.sample(range(1, 9), rng.randint(1, 5)):
            records.append(rec(task, u, choice=rng.choice(["a", "a", "a", "b", "tie"])))
    ours = labeler_reliability(records, ExportOptions())
    codes = {"a": 0, "b": 1, "tie": 2}
    result = agreement.leave_one_out_agreement(
        [r.task_id for r in records], [r.labeler_id for r in records], [codes[r.choice] for r in records]
    )
    theirs = {
        int(lid): (int(a), int(t))
        for lid, a, t in zip(result.labelers, result.agree, result.total, strict=True)
    }
    assert {lid: (r["agree"], r["compared"]) for lid, r in ours.items()} == theirs
