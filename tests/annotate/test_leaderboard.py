"""Leaderboard: Davidson ties/both-bad checked against a direct likelihood maximisation, style
control, bootstrap intervals and the top-rank robustness line."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize

from annotate.leaderboard import (
    A_WINS,
    B_WINS,
    BOTH_BAD,
    RIDGE,
    TIE,
    Fit,
    Votes,
    fit_davidson,
    leaderboard,
    style_covariates,
    style_features,
    top_rank_robustness,
)


def simulate(theta, n_votes, seed, *, nu_tie=0.6, nu_bad=0.3, gamma=None, cov=None):
    rng = np.random.default_rng(seed)
    n = len(theta)
    a = rng.integers(0, n, n_votes)
    b = (a + rng.integers(1, n, n_votes)) % n
    true = Fit(
        np.asarray(theta, float),
        np.asarray(gamma if gamma is not None else []),
        nu_tie,
        nu_bad,
        0,
        True,
        None,
    )
    p = true.probabilities(a, b, cov)
    o = (rng.random(n_votes)[:, None] > p.cumsum(axis=1)).sum(axis=1)
    return a, b, np.minimum(o, 3)


def naive_negll(params, votes):
    """Davidson's original form, one vote at a time: pi = exp(x), tie = nu sqrt(pi_a pi_b)."""
    n = votes.n_models
    pi = [math.exp(x) for x in params[:n]]
    nu_t, nu_b = math.exp(params[n]), math.exp(params[n + 1])
    total = 0.0
    for a, b, o in zip(votes.a, votes.b, votes.outcome, strict=True):
        root = math.sqrt(pi[a] * pi[b])
        z = pi[a] + pi[b] + (nu_t + nu_b) * root
        num = (pi[a], pi[b], nu_t * root, nu_b * root)[o]
        total -= math.log(num / z)
    return total


def test_davidson_matches_direct_likelihood_maximisation():
    theta = np.array([0.8, 0.3, 0.0, -0.4, -0.7])
    a, b, o = simulate(theta, 400, seed=1)
    assert {A_WINS, B_WINS, TIE, BOTH_BAD} <= set(o.tolist())
    votes = Votes.build(a, b, o, 5)
    ours = fit_davidson(votes)

    def with_prior(x, votes):  # the fit maximises the likelihood with the weak prior on the strengths
        return naive_negll(x, votes) + RIDGE * float(x[:5] @ x[:5])

    direct = minimize(with_prior, np.zeros(7), args=(votes,), method="Nelder-Mead",
                      options={"maxiter": 40000, "maxfev": 40000, "xatol": 1e-7, "fatol": 1e-9})  # fmt: skip
    direct = minimize(with_prior, direct.x, args=(votes,), method="BFGS")  # polish: numeric gradients
    ref_theta = direct.x[:5] - direct.x[:5].mean()
    assert np.allclose(ours.theta, ref_theta, atol=2e-3), (ours.theta, ref_theta)
    assert ours.nu_tie == pytest.approx(math.exp(direct.x[5]), rel=5e-3)
    assert ours.nu_bad == pytest.approx(math.exp(direct.x[6]), rel=5e-3)
    assert ours.log_likelihood == pytest.approx(-naive_negll(direct.x, votes), abs=1e-4)
    # and the tie model is not plain BT: ties pull the strengths together
    without = fit_davidson(Votes.build(a[o < 2], b[o < 2], o[o < 2], 5))
    assert without.nu_tie == 0.0 and without.nu_bad == 0.0


def test_strengths_and_tie_rates_are_recovered_on_many_votes():
    theta = np.array([1.0, 0.4, 0.0, -0.5, -0.9])
    a, b, o = simulate(theta, 20000, seed=2)
    f = fit_davidson(Votes.build(a, b, o, 5))
    assert np.allclose(f.theta, theta - theta.mean(), atol=0.08)
    assert f.nu_tie == pytest.approx(0.6, rel=0.1)
    assert f.nu_bad == pytest.approx(0.3, rel=0.15)
    assert f.ranking().tolist() == [0, 1, 2, 3, 4]


def test_style_control_removes_a_length_advantage():
    # model 0 is no better than 1 but writes longer answers, and voters like length
    rng = np.random.default_rng(5)
    n_votes = 6000
    a = rng.integers(0, 3, n_votes)
    b = (a + rng.integers(1, 3, n_votes)) % 3
    # lengths vary within each model (style is then identifiable); model 0 writes longer on average
    extra = np.array([800.0, 0.0, 0.0])
    zeros = np.zeros(n_votes)
    fa = np.stack([rng.uniform(100, 2000, n_votes) + extra[a], zeros, zeros, zeros], axis=1)
    fb = np.stack([rng.uniform(100, 2000, n_votes) + extra[b], zeros, zeros, zeros], axis=1)
    x = style_covariates(fa, fb)
    theta = np.array([0.0, 0.0, -0.8])
    true = Fit(theta, np.array([0.7, 0, 0, 0]), 0.5, 0.0, 0, True, None)
    p = true.probabilities(a, b, x)
    o = (rng.random(n_votes)[:, None] > p.cumsum(axis=1)).sum(axis=1)
    plain = fit_davidson(Votes.build(a, b, o, 3))
    styled = fit_davidson(Votes.build(a, b, o, 3, covariates=x))
    assert plain.theta[0] - plain.theta[1] > 0.3  # length inflates model 0
    assert abs(styled.theta[0] - styled.theta[1]) < 0.15
    assert styled.gamma[0] == pytest.approx(0.7, abs=0.1)
    assert np.allclose(styled.gamma[1:], 0.0)  # constant columns do nothing


def test_style_features_count_markdown():
    text = "# Title\n\n- one\n- two\n1. three\n\nSome **bold** and __more__."
    f = style_features(text)
    assert f.tolist() == [len(text), 1, 3, 2]


def test_bootstrap_intervals_cover_the_estimate_and_order_the_clear_cases():
    theta = np.array([1.5, 0.0, -1.5])
    a, b, o = simulate(theta, 600, seed=3)
    lb = leaderboard(Votes.build(a, b, o, 3), ["big", "mid", "small"], bootstrap_rounds=40, robustness=False)
    rows = lb.rows()
    assert [r["model"] for r in rows] == ["big", "mid", "small"]
    for r in rows:
        assert r["rating_low"] <= r["rating"] <= r["rating_high"]
    assert rows[0]["rank_low"] == rows[0]["rank_high"] == 1
    assert rows[0]["rating_low"] > rows[1]["rating_high"]


def test_robustness_exact_on_small_data():
    # 0 beats 1 three times, 1 beats 0 once, both beat 2: removing two of 0's wins over 1 flips the top
    a = [0, 0, 0, 1, 0, 1, 0, 1]
    b = [1, 1, 1, 0, 2, 2, 2, 2]
    o = [A_WINS] * 8
    votes = Votes.build(a, b, o, 3)
    r = top_rank_robustness(votes)
    assert r["method"] == "exact"
    assert r["top"] == 0 and r["new_top"] == 1
    k = r["votes_to_flip"]
    keep = np.ones(len(a), bool)
    keep[r["removed"]] = False
    assert fit_davidson(votes.subset(keep)).ranking()[0] == 1
    # minimality: no smaller removal flips it
    import itertools

    for size in range(1, k):
        for sub in itertools.combinations(range(len(a)), size):
            keep = np.ones(len(a), bool)
            keep[list(sub)] = False
            assert fit_davidson(votes.subset(keep)).ranking()[0] == 0


def test_robustness_approximation_names_a_removal_that_really_flips():
    theta = np.array([0.5, 0.35, 0.0, -0.3, -0.6])
    a, b, o = simulate(theta, 800, seed=4)
    votes = Votes.build(a, b, o, 5)
    f = fit_davidson(votes)
    r = top_rank_robustness(votes, f)
    assert r["method"].startswith("influence")
    assert r["votes_to_flip"] is not None and r["votes_to_flip"] == len(r["removed"])
    keep = np.ones(len(votes), bool)
    keep[r["removed"]] = False
    assert fit_davidson(votes.subset(keep)).ranking()[0] != f.ranking()[0]
    # the influence order beats removing the same number of random votes
    rng = np.random.default_rng(0)
    flips = 0
    for _ in range(5):
        keep = np.ones(len(votes), bool)
        keep[rng.choice(len(votes), r["votes_to_flip"], replace=False)] = False
        flips += fit_davidson(votes.subset(keep)).ranking()[0] != f.ranking()[0]
    assert flips < 5
    lb = leaderboard(votes, bootstrap_rounds=5)
    assert f"removing {r['votes_to_flip']} of 800 votes" in lb.robustness_line()


def test_bad_votes_are_rejected():
    with pytest.raises(ValueError):
        Votes.build([0], [0], [A_WINS])
    with pytest.raises(ValueError):
        Votes.build([0], [1], [7])


def test_a_model_with_one_vote_gets_a_wide_interval_not_the_top_rank():
    """A model with one win and nothing else ran off to an unbounded rating (the tiny ridge held
    nothing back): ranked first with a zero-width interval [3780, 3780], and the centring stretched
    every other model's interval. With the weak prior it sits within reach of the others, its
    interval is wide, and the well-measured models keep their order."""
    theta = np.array([0.6, 0.2, -0.2, -0.6])
    a, b, o = simulate(theta, 400, seed=7)
    a, b, o = np.append(a, 4), np.append(b, 0), np.append(o, A_WINS)  # m4 beats m0 once
    lb = leaderboard(
        Votes.build(a, b, o, 5), ["m0", "m1", "m2", "m3", "m4"], bootstrap_rounds=40, robustness=False
    )
    rows = {r["model"]: r for r in lb.rows()}
    assert rows["m4"]["rating"] - 1000 < 400  # not thousands of points off the scale
    assert rows["m4"]["rating_high"] - rows["m4"]["rating_low"] > 150  # one vote says little
    assert rows["m4"]["rank_high"] - rows["m4"]["rank_low"] >= 2
    assert rows["m0"]["rating_high"] - rows["m0"]["rating_low"] < 250  # the others are not stretched
    assert [r["model"] for r in lb.rows() if r["model"] != "m4"] == ["m0", "m1", "m2", "m3"]
