"""Bootstrap confidence intervals of the report's agreement coefficients (issue 14): each is
recomputed from the column sums of per-item vectors, so a "resample" that draws every item exactly
once must give back the point estimate of the library's own function, exactly; real resamples are
seeded, bracket the estimate and narrow as items grow."""

from __future__ import annotations

import numpy as np
import pytest

from annotate import agreement as ag


def _nominal_data(n_items: int, labels_per_item: int = 3, k: int = 4, agree: float = 0.7, seed: int = 0):
    """Long format: each item has a true label; labelers (of 6) copy it with probability ``agree``."""
    rng = np.random.default_rng(seed)
    tix, lix, code = [], [], []
    for t in range(n_items):
        truth = rng.integers(k)
        for lab in rng.choice(6, size=labels_per_item, replace=False):
            tix.append(t)
            lix.append(lab)
            code.append(truth if rng.random() < agree else rng.integers(k))
    return np.array(tix), np.array(lix), np.array(code)


def _counts(tix, code, k):
    return np.bincount(tix * k + code, minlength=(tix.max() + 1) * k).reshape(-1, k)


class _Identity:
    """An rng whose multinomial draw is every item once: the "resample" is the data itself."""

    def multinomial(self, n, pvals, size):
        return np.tile(np.rint(np.asarray(pvals) * n), (size, 1))


def _identity_rng(monkeypatch):
    monkeypatch.setattr(ag.np.random, "default_rng", lambda seed=None: _Identity())


def test_the_resample_statistics_equal_the_library_functions(monkeypatch):
    tix, lix, code = _nominal_data(60, labels_per_item=3)
    # some items with 2 labels, so Fleiss runs on the modal subset only
    drop = np.flatnonzero(tix % 7 == 0)[::3]
    keep = np.setdiff1d(np.arange(len(tix)), drop)
    tix, lix, code = tix[keep], lix[keep], code[keep]
    counts = _counts(tix, code, 4)
    m = counts.sum(axis=1)
    _identity_rng(monkeypatch)
    got = ag.nominal_intervals(counts, fleiss_raters=3, resamples=3)
    pairable = counts[m >= 2]
    mp = m[m >= 2]
    percent = (pairable * (pairable - 1)).sum() / (mp * (mp - 1)).sum()
    assert got["percent_agreement"] == pytest.approx((percent, percent))
    alpha = ag.krippendorff_alpha_from_counts(pairable, np.arange(4), "nominal")
    assert got["krippendorff_alpha"] == pytest.approx((alpha, alpha))
    fleiss = ag.fleiss_kappa(counts[m == 3])
    assert got["fleiss_kappa"] == pytest.approx((fleiss, fleiss))

    pt = ag.pair_tables(tix, lix, code, 4, 6)
    ok = pt.shared >= 5
    kappas = ag.cohen_kappa_tables(pt.tables[ok])
    good = np.isfinite(kappas)
    mean = np.average(kappas[good], weights=pt.shared[ok][good])
    assert ag.cohen_mean_interval(tix, lix, code, 4, 6, min_shared=5, resamples=3) == pytest.approx(
        (mean, mean)
    )


def test_ordinal_alpha_and_kendall_w_statistics_equal_the_library(monkeypatch):
    rng = np.random.default_rng(5)
    task, rows = [], []
    for t in range(30):
        truth = rng.permutation(4).astype(float)
        for _ in range(3):
            noisy = truth + rng.normal(scale=1.0, size=4)
            task.append(t)
            rows.append(np.argsort(np.argsort(noisy)).astype(float) + 1)
    task, ranks = np.array(task), np.array(rows)
    units = task[:, None] * 4 + np.arange(4)[None, :]
    vals, v_idx = np.unique(ranks.ravel(), return_inverse=True)
    u, u_idx = np.unique(units.ravel(), return_inverse=True)
    counts = np.zeros((len(u), len(vals)))
    np.add.at(counts, (u_idx, v_idx), 1)
    alpha = ag.krippendorff_alpha_from_counts(counts, vals, "ordinal")
    _identity_rng(monkeypatch)
    assert ag.ordinal_alpha_interval(task, ranks, resamples=3) == pytest.approx((alpha, alpha))
    w = ag.kendall_w_by_task(task, ranks)
    mean, count = ag.kendall_w_mean_by_task(task, ranks)
    assert count == 30 and ag.mean_interval(w, resamples=3) == pytest.approx((mean, mean))


def test_intervals_are_seeded_bracket_the_estimate_and_narrow_with_more_items():
    widths = []
    for n_items in (25, 400):
        tix, lix, code = _nominal_data(n_items, seed=n_items)
        counts = _counts(tix, code, 4)
        got = ag.nominal_intervals(counts, fleiss_raters=3, resamples=1000, seed=0)
        assert got == ag.nominal_intervals(counts, fleiss_raters=3, resamples=1000, seed=0)
        alpha = ag.krippendorff_alpha_from_counts(counts, np.arange(4), "nominal")
        low, high = got["krippendorff_alpha"]
        assert low < alpha < high
        widths.append(high - low)
        cohen = ag.cohen_mean_interval(tix, lix, code, 4, 6, min_shared=5, resamples=1000)
        assert cohen[0] < cohen[1]
    assert widths[1] < widths[0] / 2  # ~1/sqrt(n): 16x the items, a quarter of the width


def test_no_items_or_an_undefined_statistic_gives_no_interval():
    assert ag.nominal_intervals(np.zeros((0, 4)))["krippendorff_alpha"] == (None, None)
    same = np.array([[3, 0, 0, 0]] * 10)  # no variation: alpha undefined in every resample
    assert ag.nominal_intervals(same, fleiss_raters=3)["krippendorff_alpha"] == (None, None)
    assert ag.mean_interval(np.zeros(0)) == (None, None)
