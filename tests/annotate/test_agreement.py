"""Agreement statistics: published test vectors (TV1-TV5), brute-force cross-checks and properties.

The vectors are public values and are hard-coded here so the tests always run; when
../shared/reference/agreement-test-vectors.md is present it is parsed and compared with them.
"""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import optimize
from scipy import stats as sps

from annotate import agreement as ag
from tests.conftest import REFERENCE_DIR, require_shared

NaN = float("nan")

# ---- the published vectors (see ../shared/reference/agreement-test-vectors.md for sources) ----

TV1_TABLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]
TV1 = {"p_bar": 0.378022, "pe_bar": 0.212755, "kappa": 0.209931}

TV2_TEXT = (
    "444444 222555 233335 555555 222444 113333 333355 113334 114444 555555 "
    "144444 124444 222333 144444 224445 333335 111455 111112 224444 133555 "
    "555555 244444 224555 114444 144445 222224 111155 224444 133333 555555"
)
TV2_TOKENS = TV2_TEXT.split()
TV2 = {"totals": [26, 26, 30, 55, 43], "kappa": 0.4302445}

TV3_ROWS = [
    "1 2 3 3 2 1 4 1 2 . . .",
    "1 2 3 3 2 2 4 1 2 5 . 3",
    ". 3 3 3 2 3 4 2 2 5 1 .",
    "1 2 3 3 2 4 4 1 2 5 1 .",
]
TV3 = {"nominal": 0.743421, "ordinal": 0.815388, "interval": 0.849107, "ratio": 0.797403}

TV4_ROWS = [
    ". . . . . 3 4 1 2 1 1 3 3 . 3",
    "1 . 2 1 3 3 4 3 . . . . . . .",
    ". . 2 1 3 4 4 . 2 1 1 3 3 . 4",
]
TV4 = {"nominal": 0.691358, "interval": 0.810845}

TV5_2X2 = [[20, 5], [10, 15]]
TV5_2X2_EXPECTED = {"p_o": 0.7, "p_e": 0.5, "kappa": 0.4}
TV5_3X3 = [[0, 4, 1], [0, 8, 0], [0, 1, 5]]
TV5_3X3_EXPECTED = {"kappa": 0.4842, "linear": 0.4701}  # four decimals published


def parse_rows(rows: list[str]) -> np.ndarray:
    return np.array([[NaN if v == "." else float(v) for v in r.split()] for r in rows])


def tokens_to_table(tokens: list[str], k: int = 5) -> np.ndarray:
    return np.array([[t.count(str(c)) for c in range(1, k + 1)] for t in tokens])


# ---------------------------------------------------------------------------------- vectors


def test_tv1_fleiss_wikipedia_example():
    res = ag.fleiss_kappa_details(TV1_TABLE)
    assert res.p_bar == pytest.approx(TV1["p_bar"], abs=1e-6)
    assert res.pe_bar == pytest.approx(TV1["pe_bar"], abs=1e-6)
    assert res.kappa == pytest.approx(TV1["kappa"], abs=1e-6)
    assert (res.subjects, res.raters) == (10, 14)


def test_tv2_fleiss_1971_original_data():
    table = tokens_to_table(TV2_TOKENS)
    assert table.sum(axis=0).tolist() == TV2["totals"]
    assert ag.fleiss_kappa(table) == pytest.approx(TV2["kappa"], abs=1e-6)


@pytest.mark.parametrize("level", sorted(TV3))
def test_tv3_krippendorff_2011(level):
    assert ag.krippendorff_alpha(parse_rows(TV3_ROWS), level) == pytest.approx(TV3[level], abs=1e-6)


@pytest.mark.parametrize("level", sorted(TV4))
def test_tv4_krippendorff_wikipedia(level):
    assert ag.krippendorff_alpha(parse_rows(TV4_ROWS), level) == pytest.approx(TV4[level], abs=1e-6)


def test_tv5_cohen_2x2():
    res = ag.cohen_kappa_details(TV5_2X2)
    assert res.p_observed == pytest.approx(TV5_2X2_EXPECTED["p_o"], abs=1e-6)
    assert res.p_expected == pytest.approx(TV5_2X2_EXPECTED["p_e"], abs=1e-6)
    assert res.kappa == pytest.approx(TV5_2X2_EXPECTED["kappa"], abs=1e-6)


def test_tv5_cohen_3x3_sas_example():
    assert ag.cohen_kappa(TV5_3X3) == pytest.approx(TV5_3X3_EXPECTED["kappa"], abs=1e-4)
    assert ag.cohen_kappa(TV5_3X3, weights="linear") == pytest.approx(TV5_3X3_EXPECTED["linear"], abs=1e-4)


def test_cohen_from_labels_equals_from_table():
    a, b = [], []
    for i, j in itertools.product(range(3), range(3)):
        a += [i] * TV5_3X3[i][j]
        b += [j] * TV5_3X3[i][j]
    for w in (None, "linear", "quadratic"):
        assert ag.cohen_kappa(a, b, weights=w) == pytest.approx(ag.cohen_kappa(TV5_3X3, weights=w), abs=1e-12)


def _published_numbers(text: str, section: str) -> str:
    match = re.search(rf"## {section}\b.*?(?=\n## |\Z)", text, re.S)
    assert match, f"section {section} not found in the reference file"
    return match.group(0)


def test_reference_file_matches_the_hardcoded_vectors():
    path = require_shared(REFERENCE_DIR / "agreement-test-vectors.md")
    text = path.read_text()

    def block(section: str) -> list[str]:
        body = _published_numbers(text, section)
        return [ln for ln in re.search(r"```\n(.*?)```", body, re.S).group(1).splitlines() if ln.strip()]

    def value(section: str, name: str) -> float:
        found = re.search(rf"{name}(?: =)? (-?[0-9.]+)", _published_numbers(text, section))
        assert found, f"{name} not published in {section}"
        return float(found.group(1))

    assert [[int(v) for v in ln.split()] for ln in block("TV1")] == TV1_TABLE
    assert value("TV1", "P-bar") == TV1["p_bar"]
    assert value("TV1", "Pe-bar") == TV1["pe_bar"]
    assert value("TV1", "kappa") == TV1["kappa"]
    assert " ".join(block("TV2")).split() == TV2_TOKENS
    assert value("TV2", "kappa") == TV2["kappa"]
    assert [ln.split(":", 1)[1].strip() for ln in block("TV3")] == TV3_ROWS
    for level, expected in TV3.items():
        assert value("TV3", level) == expected
    assert [ln.split(":", 1)[1].strip() for ln in block("TV4")] == TV4_ROWS
    for level, expected in TV4.items():
        assert value("TV4", level) == expected
    tv5 = _published_numbers(text, "TV5")
    assert "[[20, 5], [10, 15]]" in tv5 and "kappa = 0.4" in tv5
    assert "[[0, 4, 1], [0, 8, 0], [0, 1, 5]]" in tv5
    assert "unweighted kappa = 0.4842" in tv5 and "kappa = 0.4701" in tv5


# --------------------------------------------------------------------- brute-force references


def alpha_brute_force(data: np.ndarray, level: str) -> float:
    """Krippendorff's alpha straight from the definition: all pairable value pairs."""
    pairs_within, weights_within, values = [], [], []
    for unit in data.T:
        vals = unit[~np.isnan(unit)]
        if len(vals) < 2:
            continue
        values.extend(vals)
        for i, j in itertools.permutations(range(len(vals)), 2):
            pairs_within.append((vals[i], vals[j]))
            weights_within.append(1.0 / (len(vals) - 1))
    values = np.array(values)
    n = len(values)
    if n < 2:
        return NaN
    uniq, counts = np.unique(values, return_counts=True)
    freq = dict(zip(uniq, counts, strict=True))

    def delta(c, k):
        if level == "nominal":
            return float(c != k)
        if level == "interval":
            return (c - k) ** 2
        if level == "ratio":
            return 0.0 if c + k == 0 else ((c - k) / (c + k)) ** 2
        lo, hi = min(c, k), max(c, k)
        between = sum(freq[g] for g in uniq if lo <= g <= hi)
        return (between - (freq[c] + freq[k]) / 2) ** 2

    d_o = sum(w * delta(c, k) for (c, k), w in zip(pairs_within, weights_within, strict=True)) / n
    d_e = sum(delta(values[i], values[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    return 1 - d_o / d_e if d_e > 0 else NaN


def reliability_data(max_coders=5, max_units=8, max_value=4):
    @st.composite
    def build(draw):
        coders = draw(st.integers(2, max_coders))
        units = draw(st.integers(1, max_units))
        cells = draw(
            st.lists(
                st.one_of(st.none(), st.integers(0, max_value)),
                min_size=coders * units,
                max_size=coders * units,
            )
        )
        return np.array([NaN if c is None else float(c) for c in cells]).reshape(coders, units)

    return build()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reliability_data(), st.sampled_from(ag.LEVELS))
def test_alpha_matches_the_definition(data, level):
    expected = alpha_brute_force(data, level)
    got = ag.krippendorff_alpha(data, level)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(reliability_data(), st.sampled_from(ag.LEVELS), st.randoms(use_true_random=False))
def test_alpha_ignores_the_order_of_coders_and_units(data, level, rnd):
    rows = list(range(data.shape[0]))
    cols = list(range(data.shape[1]))
    rnd.shuffle(rows)
    rnd.shuffle(cols)
    a = ag.krippendorff_alpha(data, level)
    b = ag.krippendorff_alpha(data[rows][:, cols], level)
    assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=2, max_size=30).filter(lambda v: len(set(v)) >= 2),
    st.integers(2, 6),
    st.sampled_from(ag.LEVELS),
)
def test_perfect_agreement_gives_one(unit_values, coders, level):
    data = np.tile(np.array(unit_values, dtype=float), (coders, 1))
    assert ag.krippendorff_alpha(data, level) == pytest.approx(1.0)
    assert ag.percent_agreement(data) == pytest.approx(1.0)
    table = np.array([[coders if v == c else 0 for c in range(6)] for v in unit_values])
    assert ag.fleiss_kappa(table) == pytest.approx(1.0)
    assert ag.cohen_kappa(unit_values, unit_values) == pytest.approx(1.0)
    assert ag.kendall_tau_b(unit_values, unit_values) == pytest.approx(1.0)


def scotts_pi(a: list[int], b: list[int]) -> float:
    n = len(a)
    p_o = sum(x == y for x, y in zip(a, b, strict=True)) / n
    cats = set(a) | set(b)
    p_e = sum(((a.count(c) + b.count(c)) / (2 * n)) ** 2 for c in cats)
    return (p_o - p_e) / (1 - p_e)


two_raters = st.integers(2, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 3), min_size=n, max_size=n),
        st.lists(st.integers(0, 3), min_size=n, max_size=n),
    )
)


@settings(max_examples=80, deadline=None)
@given(two_raters)
def test_two_rater_identities(pair):
    """True invariants for two raters with no missing values:
    * Fleiss' kappa with 2 raters is Scott's pi (Fleiss generalised pi, not Cohen's kappa);
    * Krippendorff's nominal alpha corrects pi for sample size: 1 - alpha = (2N-1)/(2N) (1 - pi),
      so alpha approaches pi as N grows;
    * Cohen's kappa is symmetric in the raters, and percent agreement has one meaning in both forms."""
    a, b = pair
    assume(len(set(a) | set(b)) >= 2)
    n = len(a)
    pi = scotts_pi(a, b)
    table = np.zeros((n, 4))
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        table[i, x] += 1
        table[i, y] += 1
    assert ag.fleiss_kappa(table) == pytest.approx(pi, abs=1e-9)
    alpha = ag.krippendorff_alpha([a, b], "nominal")
    assert 1 - alpha == pytest.approx((2 * n - 1) / (2 * n) * (1 - pi), abs=1e-9)
    for w in (None, "linear", "quadratic"):
        k_ab = ag.cohen_kappa(a, b, weights=w, categories=range(4))
        k_ba = ag.cohen_kappa(b, a, weights=w, categories=range(4))
        assert (math.isnan(k_ab) and math.isnan(k_ba)) or k_ab == pytest.approx(k_ba, abs=1e-12)
    assert ag.percent_agreement(a, b) == pytest.approx(ag.percent_agreement(np.array([a, b], float)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 20), min_size=3, max_size=3), min_size=1, max_size=30))
def test_cohen_equals_scott_and_fleiss_when_marginals_match(rows):
    """With a symmetric confusion table both raters have the same marginals, and Cohen's kappa,
    Scott's pi and two-rater Fleiss' kappa coincide."""
    half = np.zeros((3, 3))
    for i, r in enumerate(rows[:3]):
        half[i] = r
    table = half + half.T
    assume(table.sum() > 0)
    a, b = [], []
    for i, j in itertools.product(range(3), range(3)):
        a += [i] * int(table[i, j])
        b += [j] * int(table[i, j])
    assume(len(set(a)) >= 2)
    kappa = ag.cohen_kappa(table)
    assert kappa == pytest.approx(scotts_pi(a, b), abs=1e-9)
    fleiss_rows = np.zeros((len(a), 3))
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        fleiss_rows[i, x] += 1
        fleiss_rows[i, y] += 1
    assert ag.fleiss_kappa(fleiss_rows) == pytest.approx(kappa, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 12).flatmap(lambda n: st.tuples(st.permutations(range(n)), st.permutations(range(n)))))
def test_kendall_w_two_raters_is_mean_spearman(pair):
    """Without ties, W = ((m - 1) mean(rho_s) + 1) / m; for m = 2: (1 + rho) / 2."""
    x, y = pair
    rho = sps.spearmanr(x, y).statistic
    assert ag.kendall_w([x, y]) == pytest.approx((1 + rho) / 2, abs=1e-9)


def test_kendall_w_ties_correction_by_hand():
    ratings = [[1, 2, 2, 4], [1, 3, 2, 4], [2, 1, 3, 4]]
    ranks = np.array([sps.rankdata(r) for r in ratings])
    m, n = ranks.shape
    s = ((ranks.sum(0) - ranks.sum(0).mean()) ** 2).sum()
    t = 2**3 - 2  # one tie of two in the first rater
    assert ag.kendall_w(ratings) == pytest.approx(12 * s / (m**2 * (n**3 - n) - m * t))
    assert ag.kendall_w([[1, 2, 3], [1, 2, 3], [1, 2, 3]]) == pytest.approx(1.0)


@settings(max_examples=80, deadline=None)
@given(
    st.integers(2, 15).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(0, 4), min_size=n, max_size=n),
            st.lists(st.integers(0, 4), min_size=n, max_size=n),
        )
    )
)
def test_tau_b_matches_scipy_and_is_symmetric(pair):
    x, y = pair
    assume(len(set(x)) > 1 and len(set(y)) > 1)
    expected = sps.kendalltau(x, y, variant="b").statistic
    assert ag.kendall_tau_b(x, y) == pytest.approx(expected, abs=1e-12)
    assert ag.kendall_tau_b(y, x) == pytest.approx(expected, abs=1e-12)
    rows = ag.kendall_tau_b_rows([x, x], [y, x])
    assert rows[0] == pytest.approx(expected) and rows[1] == pytest.approx(1.0)


# ------------------------------------------------------------------- per-labeler statistics


def loo_brute_force(items, labelers, values):
    per = {}
    for i, (it, lb, v) in enumerate(zip(items, labelers, values, strict=True)):
        others = [values[j] for j in range(len(items)) if items[j] == it and j != i]
        if not others:
            continue
        counts = {c: others.count(c) for c in set(others)}
        top = max(counts.values())
        winners = [c for c, n in counts.items() if n == top]
        if len(winners) != 1:
            continue
        agree, total = per.get(lb, (0, 0))
        per[lb] = (agree + (winners[0] == v), total + 1)
    return per


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 5), st.integers(0, 3)), max_size=40))
def test_leave_one_out_matches_brute_force(rows):
    seen, clean = set(), []
    for it, lb, v in rows:
        if (it, lb) not in seen:
            seen.add((it, lb))
            clean.append((it, lb, v))
    assume(clean)
    items, labelers, values = map(list, zip(*clean, strict=True))
    res = ag.leave_one_out_agreement(items, labelers, values)
    expected = loo_brute_force(items, labelers, values)
    for lb, agree, total in zip(res.labelers, res.agree, res.total, strict=True):
        assert (agree, total) == expected.get(lb, (0, 0))


def test_leave_one_out_refuses_duplicates_and_bad_codes():
    with pytest.raises(ValueError, match="more than once"):
        ag.leave_one_out_agreement([1, 1], [7, 7], [0, 1])
    with pytest.raises(ValueError, match="category codes"):
        ag.leave_one_out_agreement([1, 2], [7, 7], [0.5, 1])
    with pytest.raises(ValueError, match="same length"):
        ag.leave_one_out_agreement([1, 2], [7], [0, 1])


def test_gold_accuracy():
    labelers, correct, total = ag.gold_accuracy([5, 5, 6, 5], ["a", "b", "tie", "a"], ["a", "a", "tie", "a"])
    assert labelers.tolist() == [5, 6]
    assert correct.tolist() == [2, 1]
    assert total.tolist() == [3, 1]


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 60).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.sampled_from([0.5, 0.25, 0.1]),
)
def test_binomial_p_value_matches_scipy(kn, p0):
    k, n = kn
    got = ag.binomial_two_sided_p([k], [n], p0)[0]
    if n == 0:
        assert math.isnan(got)
    else:
        assert got == pytest.approx(sps.binomtest(k, n, p0).pvalue, rel=1e-9, abs=1e-12)


def test_position_bias_per_labeler():
    labelers = [1] * 20 + [2] * 10
    first = [True] * 18 + [False] * 2 + [True] * 5 + [False] * 5
    res = ag.position_bias(labelers, first)
    assert res.first.tolist() == [18, 5]
    assert res.total.tolist() == [20, 10]
    assert res.rate.tolist() == [0.9, 0.5]
    assert res.p_value[0] == pytest.approx(sps.binomtest(18, 20).pvalue)
    assert res.p_value[1] == pytest.approx(1.0)


# ------------------------------------------------------------------------------ Bradley-Terry


def bt_mle(a, b, outcome, players):
    idx = {p: i for i, p in enumerate(players)}
    ia = np.array([idx[x] for x in a])
    ib = np.array([idx[x] for x in b])
    y = np.asarray(outcome, float)

    def nll(free):
        theta = np.concatenate([[0.0], free])
        d = theta[ia] - theta[ib]
        return -(y * -np.logaddexp(0, -d) + (1 - y) * -np.logaddexp(0, d)).sum()

    res = optimize.minimize(nll, np.zeros(len(players) - 1), method="BFGS", options={"gtol": 1e-10})
    theta = np.concatenate([[0.0], res.x])
    return dict(zip(players, theta - theta.mean(), strict=True))


def arena_games(seed=0, n=3000):
    rng = np.random.default_rng(seed)
    true = {"alpha": 1.0, "beta": 0.3, "gamma": 0.0, "delta": -0.8}
    names = list(true)
    a, b, out = [], [], []
    for _ in range(n):
        x, y = rng.choice(names, 2, replace=False)
        p = 1 / (1 + math.exp(true[y] - true[x]))
        r = rng.random()
        a.append(x)
        b.append(y)
        out.append(0.5 if abs(r - p) < 0.05 else float(r < p))
    return a, b, out


def test_bradley_terry_mm_is_the_maximum_likelihood_fit():
    a, b, out = arena_games()
    res = ag.bradley_terry(a, b, out, prior=0.0, bootstrap=0)
    assert res.converged
    mle = bt_mle(a, b, out, sorted(set(a)))
    for player, theta in zip(res.players, res.theta, strict=True):
        assert theta == pytest.approx(mle[player], abs=1e-6)
    assert res.players == ["alpha", "beta", "gamma", "delta"]
    assert res.elo[0] - res.elo[1] == pytest.approx(400 / math.log(10) * (res.theta[0] - res.theta[1]))


def test_bradley_terry_ties_count_half_a_win_each():
    tied = ag.bradley_terry(["x", "x", "y"], ["y", "y", "z"], [0.5, 0.5, 1.0], bootstrap=0)
    split = ag.bradley_terry(["x", "y", "y"], ["y", "x", "z"], [1.0, 1.0, 1.0], bootstrap=0)
    assert tied.players == split.players
    assert np.allclose(tied.theta, split.theta)
    assert tied.wins.tolist() == split.wins.tolist()


def test_bradley_terry_bootstrap_is_seeded_and_brackets_the_estimate():
    a, b, out = arena_games(seed=1, n=800)
    r1 = ag.bradley_terry(a, b, out, bootstrap=100, seed=7)
    r2 = ag.bradley_terry(a, b, out, bootstrap=100, seed=7)
    r3 = ag.bradley_terry(a, b, out, bootstrap=100, seed=8)
    assert np.array_equal(r1.elo_low, r2.elo_low) and np.array_equal(r1.elo_high, r2.elo_high)
    assert not np.array_equal(r1.elo_low, r3.elo_low)
    assert (r1.elo_low <= r1.elo).all() and (r1.elo <= r1.elo_high).all()
    assert (r1.elo_high - r1.elo_low > 0).all()


def test_bradley_terry_prior_keeps_an_unbeaten_player_finite():
    res = ag.bradley_terry(["a", "a", "b"], ["b", "c", "c"], [1, 1, 1], bootstrap=0)
    assert np.isfinite(res.theta).all()
    assert res.players == ["a", "b", "c"]


# ---------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ag.fleiss_kappa([[1, 2], [3, 1]]), "same number of ratings"),
        (lambda: ag.fleiss_kappa([[1, 0], [1, 0]]), "at least 2 ratings"),
        (lambda: ag.fleiss_kappa([[2, -1]]), "negative"),
        (lambda: ag.fleiss_kappa([1, 2, 3]), "2-D"),
        (lambda: ag.fleiss_kappa([[1.5, 0.5]]), "whole-number"),
        (lambda: ag.cohen_kappa([[1, 2, 3], [4, 5, 6]]), "square"),
        (lambda: ag.cohen_kappa([1, 2], [1]), "same length"),
        (lambda: ag.cohen_kappa([None], [1]), "no item rated by both"),
        (lambda: ag.cohen_kappa([[1, 2], [3, 4]], weights="cubic"), "weights"),
        (lambda: ag.cohen_kappa([1, 2], [2, 3], categories=[1, 2]), "not in categories"),
        (lambda: ag.krippendorff_alpha([[1, 2], [1, 2]], level="fuzzy"), "level"),
        (lambda: ag.krippendorff_alpha([1, 2, 3]), "2-D"),
        (lambda: ag.krippendorff_alpha([[1, 2, 3]]), "at least 2 coders"),
        (lambda: ag.krippendorff_alpha([["x", "y"], ["x", "y"]]), "numeric"),
        (lambda: ag.krippendorff_alpha([[1, float("inf")], [1, 2]]), "infinite"),
        (lambda: ag.krippendorff_alpha([[-1, 2], [1, 2]], level="ratio"), "non-negative"),
        (lambda: ag.kendall_w([[1, 2, 3]]), "at least 2 raters"),
        (lambda: ag.kendall_w([[1, NaN], [1, 2]]), "missing"),
        (lambda: ag.kendall_tau_b([1], [1]), "at least 2"),
        (lambda: ag.bradley_terry(["a"], ["a"], [1]), "against itself"),
        (lambda: ag.bradley_terry(["a"], ["b"], [2]), "outcome"),
        (lambda: ag.bradley_terry([], [], []), "no games"),
        (lambda: ag.position_bias([1, 2], [True]), "same length"),
        (lambda: ag.binomial_two_sided_p([3], [2]), "k <= n"),
    ],
)
def test_malformed_input_raises_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_undefined_statistics_are_nan_not_errors():
    assert math.isnan(ag.krippendorff_alpha([[1, 1, 1], [1, 1, 1]]))  # no variation
    assert math.isnan(ag.krippendorff_alpha([[1, NaN], [NaN, 2]]))  # nothing pairable
    assert math.isnan(ag.percent_agreement([[1, NaN], [NaN, 2]]))
    assert math.isnan(ag.cohen_kappa([1, 1], [1, 1]))


def test_many_distinct_values_still_work_for_nominal_and_interval():
    rng = np.random.default_rng(3)
    base = rng.normal(size=5000)
    data = np.vstack([base + rng.normal(scale=0.1, size=5000) for _ in range(3)])
    assert ag.krippendorff_alpha(data, "interval") > 0.95
    assert ag.krippendorff_alpha(data, "nominal") < 0.01
    with pytest.raises(ValueError, match="distinct values"):
        ag.krippendorff_alpha(data, "ordinal")


def test_one_kendall_w_behind_the_function_and_the_report_mean():
    """The report had its own vectorised copy of Kendall's W; both now run ``kendall_w_ranked``,
    so per-task W from ``kendall_w`` and the report's mean agree, ties included."""
    rng = np.random.default_rng(3)
    tasks, rows, expected = [], [], []
    for t in range(40):
        m, n = int(rng.integers(2, 5)), int(rng.integers(2, 5))
        scores = rng.integers(0, 3, size=(m, n)).astype(float)  # small range: many ties
        w = ag.kendall_w(scores)
        if np.isfinite(w):
            expected.append(w)
        for row in sps.rankdata(scores, axis=1):
            tasks.append(t)
            rows.append(np.concatenate([row, np.full(4 - n, np.nan)]))
    mean, count = ag.kendall_w_mean_by_task(np.array(tasks), np.array(rows))
    assert count == len(expected) and mean == pytest.approx(np.mean(expected))
