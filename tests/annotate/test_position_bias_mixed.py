"""Position bias in a ranking project whose tasks have different numbers of responses (a prompt
with fewer candidates than K gets a smaller task): the p-value is the exact test over all of a
labeler's judgments, each against its own chance rate 1/K. Before, only the last K group's p-value
was kept, shown beside the rate over every group (12 of 12 first picks: 4.6e-4 instead of 4.5e-7)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from annotate import agreement as ag


def _poisson_binomial_two_sided(k: int, p: list[float]) -> float:
    """Independent reference: the exact distribution by enumeration-free convolution, minlike rule."""
    pmf = np.array([1.0])
    for q in p:
        pmf = np.convolve(pmf, [1 - q, q])
    return float(pmf[pmf <= pmf[k] * (1 + 1e-7)].sum())


def test_twelve_of_twelve_first_picks_over_mixed_k():
    p0 = [1 / 3] * 7 + [1 / 4] * 5
    res = ag.position_bias(["r0"] * 12, [True] * 12, p0=np.array(p0))
    assert (res.first[0], res.total[0]) == (12, 12)
    assert res.p_value[0] == pytest.approx((1 / 3) ** 7 * (1 / 4) ** 5, rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mixed_rates_match_an_independent_exact_test(seed):
    rng = np.random.default_rng(seed)
    p0 = rng.choice([1 / 2, 1 / 3, 1 / 4, 1 / 5], size=40)
    picks = rng.random(40) < p0 * 1.6
    res = ag.position_bias(["x"] * 40, picks, p0=p0)
    assert res.p_value[0] == pytest.approx(_poisson_binomial_two_sided(int(picks.sum()), list(p0)), rel=1e-9)


def test_one_rate_is_still_the_binomial_test():
    picks = [True] * 9 + [False] * 11
    res = ag.position_bias(["x"] * 20, picks, p0=np.full(20, 0.25))
    assert res.p_value[0] == pytest.approx(stats.binomtest(9, 20, 0.25).pvalue, rel=1e-12)
    assert ag.position_bias(["x"] * 20, picks, p0=0.25).p_value[0] == pytest.approx(res.p_value[0])
