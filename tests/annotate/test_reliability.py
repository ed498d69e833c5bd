"""The preference reliability model: beats majority on a planted campaign, finds the bad labelers,
warm-starts, and keeps every labeler (flags only)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from annotate.reliability import BOTH_BAD, TIE, A, B, Labels, fit, majority_vote, weighted_vote
from bench.reliability import GOOD, planted_campaign


@pytest.fixture(scope="module")
def campaign():
    labels, truth, pool = planted_campaign(n_items=1200, k=3, seed=7)
    return labels, truth, pool, fit(labels)


def test_model_and_weighted_vote_beat_majority_at_three_labels(campaign):
    labels, truth, _, res = campaign
    ids, maj = majority_vote(labels)
    _, wmaj = weighted_vote(labels, res)
    t = truth[ids]
    acc_major = (maj == t).mean()
    acc_weighted = (wmaj == t).mean()
    acc_model = (res.map_class == t).mean()
    assert acc_model > acc_major + 0.05, (acc_model, acc_major)
    assert acc_weighted > acc_major + 0.03, (acc_weighted, acc_major)


def test_planted_bad_labelers_rank_worst_and_are_flagged(campaign):
    _, _, pool, res = campaign
    rows = res.labeler_estimates(threshold=0.6)
    bad = {j for j, kind in enumerate(pool) if kind != GOOD}
    assert {r["labeler_id"] for r in rows[: len(bad)]} == bad  # the four worst are the planted ones
    by_id = {r["labeler_id"]: r for r in rows}
    spammers = [j for j, kind in enumerate(pool) if kind == "spammer"]
    for j in spammers:
        assert by_id[j]["flagged"]
        assert by_id[j]["weight"] < min(r["weight"] for r in rows if pool[r["labeler_id"]] == GOOD)
    left = pool.index("left_biased")
    tie_happy = pool.index("tie_happy")
    assert by_id[left]["position_bias"] > 0.5  # guesses mostly A
    assert by_id[tie_happy]["tie_propensity"] > 0.5
    assert not any(by_id[j]["flagged"] for j, kind in enumerate(pool) if kind == GOOD)
    assert len(rows) == len(pool)  # nobody is dropped


def test_soft_labels_are_calibrated_probabilities(campaign):
    _, truth, _, res = campaign
    p_a = res.p_a
    assert np.all((p_a >= 0) & (p_a <= 1))
    strict = np.isin(truth[res.item_ids], (A, B))
    confident = strict & (np.abs(p_a - 0.5) > 0.45)
    # when the model is confident, it is right
    right = (p_a[confident] > 0.5) == (truth[res.item_ids][confident] == A)
    assert right.mean() > 0.95
    assert np.allclose(res.posterior.sum(axis=1), 1.0)


def test_warm_start_converges_faster_to_the_same_answer():
    labels, _, _ = planted_campaign(n_items=600, k=3, seed=3)
    cut = int(len(labels) * 0.8)
    part = Labels(labels.item[:cut], labels.labeler[:cut], labels.response[:cut], labels.strength[:cut])
    first = fit(part)
    warm = fit(labels, warm=first)
    cold = fit(labels)
    assert warm.converged and cold.converged
    assert warm.iterations < cold.iterations
    assert (warm.map_class == cold.map_class).mean() > 0.99
    assert np.allclose(warm.accuracy, cold.accuracy, atol=0.02)


def test_unanimous_labels_are_trusted_and_new_labelers_get_no_weight():
    labels = Labels.from_lists([1, 1, 1, 2, 2, 2], [10, 11, 12, 10, 11, 12], [A, A, A, B, B, B])
    res = fit(labels)
    assert res.item_posterior(1).argmax() == A
    assert res.item_posterior(2).argmax() == B
    assert res.item_posterior(99) is None
    assert res.weight_of(999) == 0.0


def test_invalid_labels_are_rejected():
    with pytest.raises(ValueError, match="response"):
        Labels.from_lists([1], [1], [4])
    with pytest.raises(ValueError, match="strength"):
        Labels.from_lists([1], [1], [A], [5])
    with pytest.raises(ValueError, match="same length"):
        Labels.from_lists([1, 2], [1], [A])
    # a tie carries no strength
    assert Labels.from_lists([1], [1], [TIE], [3]).strength.tolist() == [0]


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 6), st.integers(0, 4), st.sampled_from([A, B, TIE, BOTH_BAD]), st.integers(0, 3)
        ),
        min_size=1,
        max_size=40,
    )
)
def test_any_label_set_gives_valid_probabilities(rows):
    items, labelers, responses, strengths = zip(*rows, strict=True)
    res = fit(Labels.from_lists(items, labelers, responses, strengths), max_iter=50)
    assert np.all(np.isfinite(res.posterior))
    assert np.allclose(res.posterior.sum(axis=1), 1.0)
    assert np.all((res.accuracy >= 0) & (res.accuracy <= 1))
    assert np.all(res.weights >= 0)
    ids, _ = weighted_vote(Labels.from_lists(items, labelers, responses, strengths), res)
    assert sorted(ids.tolist()) == sorted(set(items))


def test_position_bias_is_measured_on_screen_positions():
    """Labeler 9 always picks whatever is shown on the left; display order is shuffled per label.
    In slot terms that looks unbiased; in screen terms it is the strongest bias there is."""
    rng = np.random.default_rng(4)
    items, labelers, responses, swapped = [], [], [], []
    for i in range(400):
        truth = A if i % 2 else B
        for lab in (1, 2, 3, 9):
            sw = bool(rng.random() < 0.5)
            right = truth if rng.random() < 0.9 else 1 - truth
            resp = (B if sw else A) if lab == 9 else right  # labeler 9 takes the left one
            items.append(i)
            labelers.append(lab)
            responses.append(resp)
            swapped.append(sw)
    res = fit(Labels.from_lists(items, labelers, responses, swapped=swapped))
    by_id = {r["labeler_id"]: r for r in res.labeler_estimates()}
    assert by_id[9]["position_bias"] > 0.8
    assert all(abs(by_id[g]["position_bias"]) < 0.3 for g in (1, 2, 3))
    assert by_id[9]["accuracy"] < min(by_id[g]["accuracy"] for g in (1, 2, 3))
    blind = fit(Labels.from_lists(items, labelers, responses))
    assert abs({r["labeler_id"]: r for r in blind.labeler_estimates()}[9]["position_bias"]) < 0.3
    with pytest.raises(ValueError, match="swapped"):
        Labels.from_lists([1, 2], [1, 1], [A, B], swapped=[True])
