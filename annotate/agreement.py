"""Inter-annotator agreement and labeler-quality statistics. Pure NumPy/SciPy: no Django here.

Shapes used throughout
----------------------
* **reliability data** (``data``): a 2-D array, *coders x units* (labelers x items), ``NaN`` where a
  coder did not label a unit. Values are numbers (category codes, ranks or scores). This is the
  layout of Krippendorff (2011).
* **long format** (``items, labelers, values``): three equal-length 1-D arrays, one entry per
  annotation. This is what a database gives and what the per-labeler functions take; integer codes
  for items and labelers need not be contiguous.
* **count table** (``table``): *subjects x categories*, how many raters put each subject in each
  category (Fleiss 1971).
* **confusion table**: *k x k*, rater 1 in rows, rater 2 in columns (Cohen 1960).

Every function validates its input and raises ``ValueError`` with a message saying what is wrong.
Statistics that are undefined for the data (no variation at all, no pairable values) come back as
``nan`` rather than raising, because "no agreement can be measured here" is a result, not an error.

References: Cohen (1960, 1968); Fleiss (1971); Krippendorff (2011) "Computing Krippendorff's
alpha-reliability"; Kendall & Babington Smith (1939); Hunter (2004) "MM algorithms for generalized
Bradley-Terry models"; Chiang et al. (2024) "Chatbot Arena" (Elo-scale Bradley-Terry with bootstrap).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse, stats

__all__ = [
    "BradleyTerryResult",
    "KappaResult",
    "LabelerAgreement",
    "PairTables",
    "PositionBias",
    "bootstrap_sums",
    "bradley_terry",
    "cohen_kappa",
    "cohen_kappa_details",
    "cohen_kappa_tables",
    "cohen_mean_interval",
    "fleiss_kappa",
    "fleiss_kappa_details",
    "gold_accuracy",
    "kendall_tau_b",
    "kendall_tau_b_rows",
    "kendall_w",
    "kendall_w_by_task",
    "kendall_w_mean_by_task",
    "kendall_w_ranked",
    "krippendorff_alpha",
    "krippendorff_alpha_from_counts",
    "leave_one_out_agreement",
    "mean_interval",
    "nominal_intervals",
    "ordinal_alpha_interval",
    "pair_tables",
    "percent_agreement",
    "percentile_interval",
    "position_bias",
    "value_counts_by_unit",
]

LEVELS = ("nominal", "ordinal", "interval", "ratio")
# Ordinal and ratio alpha need the full coincidence matrix (values x values); past this many
# distinct values that matrix stops fitting comfortably in memory.
MAX_VALUES_FOR_MATRIX = 4000
ELO_SCALE = 400.0 / math.log(10.0)  # theta (natural-log strength) -> Elo points
ELO_BASE = 1000.0


# --------------------------------------------------------------------------------------------
# input helpers


def _as_float_2d(data: Any, name: str = "data") -> np.ndarray:
    try:
        arr = np.asarray(data, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric (use NaN or None for missing values): {exc}") from None
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (coders x units); got {arr.ndim}-D with shape {arr.shape}")
    if np.isinf(arr).any():
        raise ValueError(f"{name} contains infinite values")
    return arr


def _as_1d(values: Any, name: str, *, dtype: Any = None) -> np.ndarray:
    arr = np.asarray(values, dtype=dtype)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {arr.shape}")
    return arr


def _same_length(**arrays: np.ndarray) -> None:
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(
            "arrays must have the same length; got " + ", ".join(f"{k}={n}" for k, n in lengths.items())
        )


def _check_count_table(table: Any, name: str = "table") -> np.ndarray:
    try:
        arr = np.asarray(table, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric 2-D array of counts") from None
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D; got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite counts")
    if (arr < 0).any():
        raise ValueError(f"{name} contains negative counts")
    if not np.allclose(arr, np.round(arr)):
        raise ValueError(f"{name} must hold whole-number counts")
    return arr


# --------------------------------------------------------------------------------------------
# percent agreement


def percent_agreement(a: Any, b: Any = None) -> float:
    """Observed agreement.

    * ``percent_agreement(a, b)``: two raters, 1-D sequences of equal length (``None``/``NaN`` =
      missing): the share of items both rated on which they gave the same label.
    * ``percent_agreement(data)``: reliability data, coders x units: the share of agreeing ordered
      pairs of labels among all pairs of labels given to the same unit (units with a single label
      are not pairable and do not count). Each unit weighs by its number of pairs, which for two
      raters is the same as the two-rater form.

    Returns ``nan`` when nothing is pairable.
    """
    if b is not None:
        x, y = _rated_by_both(a, b)
        if len(x) == 0:
            return float("nan")
        return float(np.mean([u == v for u, v in zip(x, y, strict=True)]))
    counts, _ = value_counts_by_unit(_as_float_2d(a))
    m = np.asarray(counts.sum(axis=1)).ravel()
    pairs = (m * (m - 1)).sum()
    if pairs == 0:
        return float("nan")
    same = np.asarray(counts.multiply(counts).sum(axis=1)).ravel() - m
    return float(same.sum() / pairs)


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _rated_by_both(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    """Two raters' labels (1-D, equal length) restricted to the items both of them rated."""
    x = _as_1d(a, "a", dtype=object)
    y = _as_1d(b, "b", dtype=object)
    _same_length(a=x, b=y)
    keep = np.array([not _missing(u) and not _missing(v) for u, v in zip(x, y, strict=True)], dtype=bool)
    return x[keep], y[keep]


# --------------------------------------------------------------------------------------------
# Cohen's kappa


@dataclass(frozen=True)
class KappaResult:
    kappa: float
    p_observed: float
    p_expected: float
    n: float


def _confusion_from_labels(a: Any, b: Any, categories: Sequence | None) -> np.ndarray:
    x, y = _rated_by_both(a, b)
    if len(x) == 0:
        raise ValueError("a and b have no item rated by both raters")
    if categories is None:
        try:
            categories = sorted(set(x.tolist()) | set(y.tolist()))
        except TypeError:
            raise ValueError("labels of mixed types cannot be ordered; pass categories=[...]") from None
    index = {c: i for i, c in enumerate(categories)}
    unknown = {v for v in list(x) + list(y) if v not in index}
    if unknown:
        raise ValueError(f"labels not in categories: {sorted(map(str, unknown))[:5]}")
    k = len(categories)
    table = np.zeros((k, k))
    np.add.at(table, ([index[v] for v in x], [index[v] for v in y]), 1)
    return table


def cohen_kappa_details(
    a: Any,
    b: Any = None,
    *,
    weights: str | None = None,
    categories: Sequence | None = None,
) -> KappaResult:
    """Cohen's kappa with its observed and chance agreement.

    Input is either two equal-length 1-D label sequences ``a`` and ``b`` (items both raters
    labeled; ``None``/``NaN`` entries are dropped pairwise), or a square *k x k* confusion table
    passed as ``a`` alone (rater 1 in rows, rater 2 in columns, categories in their natural order).

    ``weights``: ``None`` (unweighted), ``"linear"`` (disagreement ``|i-j|/(k-1)``) or
    ``"quadratic"`` (``((i-j)/(k-1))**2``), with categories scored 0..k-1 in order (for labels,
    the order of ``categories`` or their sorted order). Returns ``kappa = nan`` when chance
    agreement is perfect (both raters used one and the same category throughout).
    """
    if weights not in (None, "linear", "quadratic"):
        raise ValueError(f"weights must be None, 'linear' or 'quadratic'; got {weights!r}")
    if b is None:
        table = _check_count_table(a, "confusion table")
        if table.shape[0] != table.shape[1]:
            raise ValueError(f"a confusion table must be square (k x k); got shape {table.shape}")
    else:
        table = _confusion_from_labels(a, b, categories)
    n = table.sum()
    if n <= 0:
        raise ValueError("the confusion table holds no ratings")
    k = table.shape[0]
    idx = np.arange(k)
    if weights is None or k == 1:
        w = (idx[:, None] != idx[None, :]).astype(float)
    else:
        d = np.abs(idx[:, None] - idx[None, :]) / (k - 1)
        w = d if weights == "linear" else d**2
    p = table / n
    expected = np.outer(p.sum(axis=1), p.sum(axis=0))
    d_obs = float((w * p).sum())
    d_exp = float((w * expected).sum())
    kappa = float("nan") if d_exp == 0 else 1.0 - d_obs / d_exp
    return KappaResult(kappa, 1.0 - d_obs, 1.0 - d_exp, float(n))


def cohen_kappa(
    a: Any, b: Any = None, *, weights: str | None = None, categories: Sequence | None = None
) -> float:
    """Cohen's kappa; see :func:`cohen_kappa_details` for the accepted inputs."""
    return cohen_kappa_details(a, b, weights=weights, categories=categories).kappa


# --------------------------------------------------------------------------------------------
# Fleiss' kappa


@dataclass(frozen=True)
class FleissResult:
    kappa: float
    p_bar: float
    pe_bar: float
    subjects: int
    raters: int


def fleiss_kappa_details(table: Any) -> FleissResult:
    """Fleiss' kappa from a *subjects x categories* count table.

    ``table[i, j]`` is how many raters assigned subject ``i`` to category ``j``; every row must
    sum to the same number of raters ``n >= 2`` (Fleiss 1971). Returns the mean per-subject
    agreement ``p_bar``, the chance agreement ``pe_bar`` and kappa (``nan`` when ``pe_bar == 1``).
    """
    counts = _check_count_table(table)
    totals = counts.sum(axis=1)
    n = totals[0]
    if not np.all(totals == n):
        bad = int(np.flatnonzero(totals != n)[0])
        raise ValueError(
            f"every subject needs the same number of ratings (row 0 has {n:g}, row {bad} has {totals[bad]:g}); "
            "use krippendorff_alpha for unequal or missing ratings"
        )
    if n < 2:
        raise ValueError(f"each subject needs at least 2 ratings; rows sum to {n:g}")
    n_subjects = counts.shape[0]
    p_j = counts.sum(axis=0) / (n_subjects * n)
    p_i = ((counts * counts).sum(axis=1) - n) / (n * (n - 1))
    p_bar = float(p_i.mean())
    pe_bar = float((p_j**2).sum())
    kappa = float("nan") if pe_bar == 1 else (p_bar - pe_bar) / (1 - pe_bar)
    return FleissResult(kappa, p_bar, pe_bar, n_subjects, int(n))


def fleiss_kappa(table: Any) -> float:
    """Fleiss' kappa; see :func:`fleiss_kappa_details`."""
    return fleiss_kappa_details(table).kappa


# --------------------------------------------------------------------------------------------
# Krippendorff's alpha


def value_counts_by_unit(data: Any) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Turn reliability data (coders x units, NaN = missing) into a sparse *units x values*
    matrix of how many coders gave each value to each unit, plus the sorted distinct values."""
    arr = _as_float_2d(data)
    coder_idx, unit_idx = np.nonzero(~np.isnan(arr))
    vals = arr[coder_idx, unit_idx]
    values, codes = np.unique(vals, return_inverse=True)
    n_units = arr.shape[1]
    counts = sparse.csr_matrix((np.ones(len(codes)), (unit_idx, codes)), shape=(n_units, max(len(values), 1)))
    counts.sum_duplicates()
    return counts, values


def _metric(level: str, values: np.ndarray, n_c: np.ndarray) -> np.ndarray:
    """delta^2 between every pair of values (Krippendorff 2011, section D)."""
    v = values.astype(float)
    if level == "nominal":
        return (v[:, None] != v[None, :]).astype(float)
    if level == "interval":
        return (v[:, None] - v[None, :]) ** 2
    if level == "ratio":
        s = v[:, None] + v[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            out = ((v[:, None] - v[None, :]) / s) ** 2
        return np.where(s == 0, 0.0, out)
    # ordinal: (sum of n_g for g from c to k, minus half of n_c and n_k) squared
    cum = np.concatenate([[0.0], np.cumsum(n_c)])
    lo = np.minimum.outer(np.arange(len(v)), np.arange(len(v)))
    hi = np.maximum.outer(np.arange(len(v)), np.arange(len(v)))
    between = cum[hi + 1] - cum[lo] - (n_c[:, None] + n_c[None, :]) / 2.0
    return between**2


def krippendorff_alpha_from_counts(counts: Any, values: Any, level: str = "nominal") -> float:
    """Krippendorff's alpha from a *units x values* count matrix (dense or scipy sparse):
    ``counts[u, c]`` coders gave value ``values[c]`` to unit ``u``. Units with fewer than two
    values are not pairable and are ignored. ``nan`` when fewer than two pairable values exist or
    all pairable values are the same (no variation: alpha is undefined)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}; got {level!r}")
    mat = sparse.csr_matrix(counts, dtype=float)
    vals = np.asarray(values, dtype=float).ravel()
    if mat.ndim != 2 or mat.shape[1] != len(vals):
        raise ValueError(f"counts must be units x values with {len(vals)} columns; got shape {mat.shape}")
    if mat.nnz and mat.data.min() < 0:
        raise ValueError("counts must be non-negative")
    if level == "ratio" and (vals < 0).any():
        raise ValueError("the ratio metric needs non-negative values")
    m_u = np.asarray(mat.sum(axis=1)).ravel()
    keep = m_u >= 2
    if not keep.any():
        return float("nan")
    mat = mat[keep]
    m_u = m_u[keep]
    inv = sparse.diags(1.0 / (m_u - 1.0))
    weighted = inv @ mat  # n_uc / (m_u - 1)
    n_c = np.asarray(mat.sum(axis=0)).ravel()  # marginals of the coincidence matrix
    n = n_c.sum()
    if n < 2:
        return float("nan")
    if level in ("nominal", "interval"):
        # Both reduce to sums over units: no values x values matrix needed (fast with many values).
        if level == "nominal":
            self_pairs = float(weighted.multiply(mat).sum() - weighted.sum())  # sum_c o_cc
            d_o = (n - self_pairs) / n
            d_e = (n * n - (n_c**2).sum()) / (n * (n - 1))
        else:
            s1 = mat @ vals
            s2 = mat @ (vals**2)
            within = (2 * m_u * s2 - 2 * s1**2) / (m_u - 1)
            d_o = within.sum() / n
            tot1, tot2 = (n_c * vals).sum(), (n_c * vals**2).sum()
            d_e = (2 * n * tot2 - 2 * tot1**2) / (n * (n - 1))
    else:
        if len(vals) > MAX_VALUES_FOR_MATRIX:
            raise ValueError(
                f"{level} alpha builds a values x values matrix; {len(vals)} distinct values is more than "
                f"{MAX_VALUES_FOR_MATRIX} (round the values, or use the interval level)"
            )
        o = np.asarray((mat.T @ weighted).todense()) - np.diag(np.asarray(weighted.sum(axis=0)).ravel())
        delta = _metric(level, vals, n_c)
        d_o = float((o * delta).sum()) / n
        d_e = float((np.outer(n_c, n_c) * delta).sum()) / (n * (n - 1))
    if d_e <= 0:
        return float("nan")
    return float(1.0 - d_o / d_e)


def krippendorff_alpha(data: Any, level: str = "nominal") -> float:
    """Krippendorff's alpha for reliability data *coders x units* (``NaN``/``None`` = missing).

    ``level``: ``"nominal"``, ``"ordinal"``, ``"interval"`` or ``"ratio"``. Any number of coders,
    missing values allowed; units with fewer than two values are ignored. Vectorised through the
    per-unit value counts (a sparse units x values matrix) and the coincidence matrix: 20 coders x
    100k units takes well under a second. ``nan`` when alpha is undefined (fewer than two pairable
    values, or no variation at all).
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}; got {level!r}")
    arr = _as_float_2d(data)
    if arr.shape[0] < 2:
        raise ValueError(f"reliability data needs at least 2 coders (rows); got shape {arr.shape}")
    counts, values = value_counts_by_unit(arr)
    if len(values) == 0:
        return float("nan")
    return krippendorff_alpha_from_counts(counts, values, level)


# --------------------------------------------------------------------------------------------
# rank correlation


def kendall_tau_b(x: Any, y: Any) -> float:
    """Kendall's tau-b between two rankings (or scores) of the same items, with ties corrected:
    ``(C - D) / sqrt((n0 - n1) (n0 - n2))``. ``x`` and ``y`` are 1-D, equal length, no missing
    values; lower or higher need only mean the same in both. ``nan`` when either is constant."""
    a = _as_1d(x, "x", dtype=float)
    b = _as_1d(y, "y", dtype=float)
    _same_length(x=a, y=b)
    if len(a) < 2:
        raise ValueError("Kendall's tau needs at least 2 items")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("x and y must not contain missing values")
    return float(kendall_tau_b_rows(a[None, :], b[None, :])[0])


def kendall_tau_b_rows(x: Any, y: Any) -> np.ndarray:
    """Tau-b for many pairs of rankings at once: ``x`` and ``y`` are *rows x items* (e.g. one row
    per task, items = the task's K candidates); returns one tau-b per row (``nan`` for rows where
    either ranking is constant). O(rows * K^2) memory, meant for small K."""
    a = np.asarray(x, dtype=float)
    b = np.asarray(y, dtype=float)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"x and y must be 2-D arrays of the same shape; got {a.shape} and {b.shape}")
    k = a.shape[1]
    iu = np.triu_indices(k, 1)
    sa = np.sign(a[:, :, None] - a[:, None, :])[:, iu[0], iu[1]]
    sb = np.sign(b[:, :, None] - b[:, None, :])[:, iu[0], iu[1]]
    num = (sa * sb).sum(axis=1)
    den = np.sqrt(np.abs(sa).sum(axis=1) * np.abs(sb).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def kendall_w(ratings: Any) -> float:
    """Kendall's coefficient of concordance W for *raters x items* (m x n, no missing values).

    Each row is ranked (average ranks for ties), so pass ranks or scores, as long as every rater
    orders the same way. Ties are corrected: ``W = 12 S / (m^2 (n^3 - n) - m T)`` with
    ``T = sum (t^3 - t)`` over every rater's tie groups. ``nan`` when every rater ties everything.
    """
    arr = np.asarray(ratings, dtype=float)
    if arr.ndim != 2:
        raise ValueError(f"ratings must be 2-D (raters x items); got shape {arr.shape}")
    m, n = arr.shape
    if m < 2 or n < 2:
        raise ValueError(f"Kendall's W needs at least 2 raters and 2 items; got {m} x {n}")
    if np.isnan(arr).any():
        raise ValueError("ratings must not contain missing values")
    return float(kendall_w_ranked(stats.rankdata(arr, axis=1)[None])[0])


def kendall_w_ranked(ranks: np.ndarray) -> np.ndarray:
    """Kendall's W of a stack of rank tables, shape (tasks, m raters, n items), each row already
    in average ranks (ties share the mean rank). The one implementation behind ``kendall_w`` and
    ``kendall_w_mean_by_task``. ``nan`` where every rater ties everything."""
    _, m, n = ranks.shape
    r_sum = ranks.sum(axis=1)
    s = ((r_sum - r_sum.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    den = m * m * (n**3 - n) - m * _tie_term(ranks)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 12 * s / den, np.nan)


def kendall_w_mean_by_task(task: np.ndarray, ranks: np.ndarray) -> tuple[float | None, int]:
    """Kendall's W per task, long format: ``task`` ids and ``ranks`` rows (one ranking per row,
    ``nan`` for responses not ranked). Raters of a task are its rankings; tasks whose rankings do
    not all cover the same two or more responses are left out. Returns (mean W over tasks with at
    least two raters and a defined W, or None; how many tasks). Vectorised per (raters, responses)
    shape by ``kendall_w_ranked``."""
    w = kendall_w_by_task(task, ranks)
    return (float(w.mean()) if len(w) else None), len(w)


def kendall_w_by_task(task: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """The defined per-task W values behind ``kendall_w_mean_by_task`` (order unspecified)."""
    filled = (~np.isnan(ranks)).sum(axis=1)
    order = np.lexsort((filled, task))
    task, ranks, filled = task[order], ranks[order], filled[order]
    _, start, m_per = np.unique(task, return_index=True, return_counts=True)
    ws: list[np.ndarray] = []
    for m in np.unique(m_per):
        if m < 2:
            continue
        sel = start[m_per == m]
        rows = sel[:, None] + np.arange(m)[None, :]  # (tasks, m)
        block = ranks[rows]  # (tasks, m, K)
        present = ~np.isnan(block)
        # a task counts when all its raters ranked the same two or more responses; tasks are then
        # grouped by which responses those are (one task's need not be another's)
        ok = (present == present[:, :1]).all(axis=(1, 2)) & (present[:, 0].sum(axis=1) >= 2)
        if not ok.any():
            continue
        masks, which = np.unique(present[ok, 0], axis=0, return_inverse=True)
        which = which.reshape(-1)
        for p, mask in enumerate(masks):
            ws.append(kendall_w_ranked(block[ok][which == p][:, :, mask]))
    if not ws:
        return np.zeros(0)
    w = np.concatenate(ws)
    return w[np.isfinite(w)]


def _tie_term(ranks: np.ndarray) -> np.ndarray:
    """Sum over raters and tie groups of t^3 - t, for rank rows (tasks, raters, n)."""
    # Average ranks make every member of a tie group equal; count each value's multiplicity.
    eq = ranks[..., :, None] == ranks[..., None, :]
    mult = eq.sum(axis=-1).astype(float)  # t for every member of a group of size t
    # each group contributes (t^3 - t); spread over its t members: (t^2 - 1) each
    return (mult**2 - 1).sum(axis=(-1, -2))


# --------------------------------------------------------------------------------------------
# labeler pairs

DENSE_PAIR_CELLS = 4_000_000  # labelers^2 * k^2 up to this: one bincount table; beyond: sparse


@dataclass
class PairTables:
    """Confusion tables of labeler pairs (dense labeler indices ``a < b``) over shared tasks:
    ``tables[p]`` is k x k, labeler ``a[p]`` in rows, ``b[p]`` in columns."""

    a: np.ndarray
    b: np.ndarray
    tables: np.ndarray

    @property
    def shared(self) -> np.ndarray:
        return self.tables.sum(axis=(-1, -2))


def _label_pairs(tix: np.ndarray, lix: np.ndarray, code: np.ndarray, k: int, n_labelers: int):
    """Every pair of labels given to the same task, as (task index, key) arrays per offset, the key
    ``((a * n_labelers + b) * k + label_a) * k + label_b`` with labeler indices ``a < b``.

    Sorted by task, rows ``i`` and ``i + d`` share a task for offsets d = 1, 2, ... up to the
    largest number of labels on a task: one vectorised pass per offset (no list of all pairs)."""
    keep = code >= 0
    order = np.argsort(tix[keep], kind="stable")
    t, lab, c = tix[keep][order], lix[keep][order], code[keep][order]
    d = 1
    while d < len(t):
        i = np.flatnonzero(t[:-d] == t[d:])
        if len(i) == 0:
            break
        j = i + d
        swap = lab[i] > lab[j]  # orient every pair as (lower index, higher index)
        la, lb = np.where(swap, lab[j], lab[i]), np.where(swap, lab[i], lab[j])
        ca, cb = np.where(swap, c[j], c[i]), np.where(swap, c[i], c[j])
        yield t[i], ((la * n_labelers + lb) * k + ca) * k + cb
        d += 1


def pair_tables(tix: np.ndarray, lix: np.ndarray, code: np.ndarray, k: int, n_labelers: int) -> PairTables:
    """Every pair of labels given to the same task, counted per labeler pair and label pair
    (``_label_pairs``), each offset's pairs folded into the counts at once."""
    dense = n_labelers * n_labelers * k * k <= DENSE_PAIR_CELLS
    size = n_labelers * n_labelers * k * k
    acc = np.zeros(size if dense else 0, dtype=np.int64)
    sparse_keys: list[np.ndarray] = []
    for _, key in _label_pairs(tix, lix, code, k, n_labelers):
        if dense:
            acc += np.bincount(key, minlength=size)
        else:
            sparse_keys.append(key)
    if dense:
        full = acc.reshape(n_labelers, n_labelers, k, k)
        a, b = np.nonzero(full.sum(axis=(-1, -2)))
        return PairTables(a, b, full[a, b])
    if not sparse_keys:
        return PairTables(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, k, k), np.int64))
    keys, counts = np.unique(np.concatenate(sparse_keys), return_counts=True)
    pair, cell = keys // (k * k), keys % (k * k)
    pairs, p_idx = np.unique(pair, return_inverse=True)
    tables = np.zeros((len(pairs), k * k), dtype=np.int64)
    tables[p_idx, cell] = counts
    return PairTables(pairs // n_labelers, pairs % n_labelers, tables.reshape(-1, k, k))


def cohen_kappa_tables(tables: np.ndarray) -> np.ndarray:
    """Unweighted Cohen's kappa of a stack of k x k tables (vectorised ``cohen_kappa``)."""
    n = tables.sum(axis=(-1, -2)).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_o = np.trace(tables, axis1=-2, axis2=-1) / n
        p_e = (tables.sum(axis=-1) * tables.sum(axis=-2)).sum(axis=-1) / (n * n)
        return np.where((n > 0) & (p_e < 1), (p_o - p_e) / (1 - p_e), np.nan)


# --------------------------------------------------------------------------------------------
# per-labeler quality


@dataclass
class LabelerAgreement:
    """Per labeler (``labelers`` sorted): agreeing items, comparable items, and their ratio."""

    labelers: np.ndarray
    agree: np.ndarray
    total: np.ndarray
    # per input annotation: True/False agreement with the others' consensus, or -1 when there was
    # no comparable consensus (no other label, or the others tied)
    per_annotation: np.ndarray = field(repr=False)
    consensus: np.ndarray = field(repr=False)  # per annotation: the others' majority code, -1 if none

    @property
    def rate(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.total > 0, self.agree / np.maximum(self.total, 1), np.nan)


def _codes(values: np.ndarray, name: str) -> np.ndarray:
    if values.dtype.kind not in "iu":
        if values.dtype.kind == "f" and np.all(np.isfinite(values)) and np.all(values == np.round(values)):
            values = values.astype(np.int64)
        else:
            raise ValueError(f"{name} must be whole-number category codes (drop missing labels first)")
    if len(values) and values.min() < 0:
        raise ValueError(f"{name} must be non-negative category codes")
    return values.astype(np.int64)


def _dense_codes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(x, return_inverse=True)``, by a bincount when ``x`` holds small non-negative
    integers (ids that are already dense), which is several times faster on millions of rows."""
    if x.dtype.kind in "iu" and len(x) and x.min() >= 0 and x.max() < 4 * len(x) + 1024:
        present = np.bincount(x) > 0
        return np.flatnonzero(present), (np.cumsum(present) - 1)[x]
    return np.unique(x, return_inverse=True)


def leave_one_out_agreement(items: Any, labelers: Any, values: Any) -> LabelerAgreement:
    """Each labeler's agreement with the consensus of the *other* labelers, in long format.

    ``items``, ``labelers``: integer ids, one per annotation; ``values``: integer category codes
    (0..k-1). Each (item, labeler) pair must appear at most once. For each annotation, the
    consensus is the majority label among the other labelers of that item; an annotation counts
    only when that majority is unique (a tie among the others, or no other label, leaves it out).
    Vectorised: one bincount of the per-item label counts, then "others" = counts minus own label.
    """
    it = _as_1d(items, "items")
    lb = _as_1d(labelers, "labelers")
    val = _codes(_as_1d(values, "values"), "values")
    _same_length(items=it, labelers=lb, values=val)
    if len(val) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return LabelerAgreement(empty, empty, empty, np.zeros(0, dtype=np.int8), empty)
    item_keys, item_idx = _dense_codes(it)
    lab_keys, lab_idx = _dense_codes(lb)
    pair = np.sort(item_idx.astype(np.int64) * len(lab_keys) + lab_idx)
    if (pair[1:] == pair[:-1]).any():
        raise ValueError("a labeler appears more than once on the same item")
    k = int(val.max()) + 1
    counts = np.bincount(item_idx * k + val, minlength=len(item_keys) * k).reshape(len(item_keys), k)
    others = counts[item_idx].copy()
    rows = np.arange(len(val))
    others[rows, val] -= 1
    top = others.max(axis=1)
    unique_top = (others == top[:, None]).sum(axis=1) == 1
    comparable = (top > 0) & unique_top
    consensus = np.where(comparable, others.argmax(axis=1), -1)
    agrees = comparable & (consensus == val)
    per = np.where(comparable, agrees.astype(np.int8), np.int8(-1))
    total = np.bincount(lab_idx, weights=comparable, minlength=len(lab_keys)).astype(np.int64)
    agree = np.bincount(lab_idx, weights=agrees, minlength=len(lab_keys)).astype(np.int64)
    return LabelerAgreement(lab_keys, agree, total, per, consensus)


def gold_accuracy(labelers: Any, values: Any, gold: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Accuracy on gold tasks, long format: one entry per gold annotation with the labeler id, the
    label and the gold answer (any comparable values). Returns ``(labelers, correct, total)``,
    labelers sorted."""
    lb = _as_1d(labelers, "labelers")
    val = _as_1d(values, "values", dtype=object)
    gd = _as_1d(gold, "gold", dtype=object)
    _same_length(labelers=lb, values=val, gold=gd)
    keys, idx = np.unique(lb, return_inverse=True)
    right = np.array([v == g for v, g in zip(val, gd, strict=True)], dtype=float)
    correct = np.bincount(idx, weights=right, minlength=len(keys)).astype(np.int64)
    total = np.bincount(idx, minlength=len(keys)).astype(np.int64)
    return keys, correct, total


@dataclass
class PositionBias:
    """Per labeler (sorted): decisive judgments, how many picked the first-shown response, the
    rate, and the exact two-sided binomial p-value against ``p0``."""

    labelers: np.ndarray
    first: np.ndarray
    total: np.ndarray
    rate: np.ndarray
    p_value: np.ndarray


def binomial_two_sided_p(k: Any, n: Any, p0: float = 0.5) -> np.ndarray:
    """Exact two-sided binomial test p-values (the 'minlike' rule, as scipy.stats.binomtest):
    vectorised closed form for ``p0 = 0.5``, scipy per entry otherwise; ``nan`` where n = 0."""
    k = np.atleast_1d(np.asarray(k, dtype=np.int64))
    n = np.atleast_1d(np.asarray(n, dtype=np.int64))
    if k.shape != n.shape or (k < 0).any() or (k > n).any():
        raise ValueError("need 0 <= k <= n, elementwise, with k and n of the same shape")
    if not 0 < p0 < 1:
        raise ValueError(f"p0 must be strictly between 0 and 1; got {p0}")
    out = np.full(k.shape, np.nan)
    ok = n > 0
    if p0 == 0.5:
        lo = np.minimum(k, n - k)
        out[ok] = np.minimum(1.0, 2.0 * stats.binom.cdf(lo[ok], n[ok], 0.5))
    else:
        for i in np.flatnonzero(ok):
            out[i] = stats.binomtest(int(k[i]), int(n[i]), p0).pvalue
    return out


def poisson_binomial_two_sided_p(k: int, p: Any) -> float:
    """Exact two-sided p-value of ``k`` successes in independent trials of success rates ``p``
    (the Poisson-binomial distribution, built by convolving one binomial per distinct rate), by
    the 'minlike' rule of ``binomial_two_sided_p``: the mass of the outcomes no likelier than ``k``."""
    rates, counts = np.unique(np.asarray(p, dtype=float), return_counts=True)
    pmf = np.array([1.0])
    for q, m in zip(rates, counts, strict=True):
        pmf = np.convolve(pmf, stats.binom.pmf(np.arange(m + 1), m, q))
    return float(min(1.0, pmf[pmf <= pmf[k] * (1 + 1e-7)].sum()))


def position_bias(labelers: Any, picked_first: Any, p0: Any = 0.5) -> PositionBias:
    """Position bias per labeler from long-format decisive judgments: ``picked_first[i]`` is true
    when annotation ``i`` preferred the response shown first (left). Ties and "both bad" should
    be left out by the caller. ``p0`` is the rate expected without bias (0.5 for pairs, 1/K for
    "ranked the first-shown of K on top"): one rate, or one per judgment (a ranking project whose
    tasks have different K). The p-value is the exact test over all of a labeler's judgments: the
    binomial test for one rate, the Poisson-binomial test for several."""
    lb = _as_1d(labelers, "labelers")
    first = _as_1d(picked_first, "picked_first").astype(bool)
    _same_length(labelers=lb, picked_first=first)
    keys, idx = np.unique(lb, return_inverse=True)
    n_first = np.bincount(idx, weights=first, minlength=len(keys)).astype(np.int64)
    total = np.bincount(idx, minlength=len(keys)).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(total > 0, n_first / np.maximum(total, 1), np.nan)
    rates = np.broadcast_to(np.asarray(p0, dtype=float), first.shape)
    if len(rates) == 0 or np.all(rates == rates[0]):
        p_value = binomial_two_sided_p(n_first, total, float(rates[0]) if len(rates) else 0.5)
    else:
        p_value = np.full(len(keys), np.nan)
        for i in range(len(keys)):
            mine = rates[idx == i]
            if len(np.unique(mine)) == 1:
                p_value[i] = binomial_two_sided_p([n_first[i]], [total[i]], float(mine[0]))[0]
            else:
                p_value[i] = poisson_binomial_two_sided_p(int(n_first[i]), mine)
    return PositionBias(keys, n_first, total, rate, p_value)


# --------------------------------------------------------------------------------------------
# Bradley-Terry


@dataclass
class BradleyTerryResult:
    """Strengths of ``players`` (sorted by strength, best first).

    ``theta``: log-strengths, centred to mean 0 (P(i beats j) = 1 / (1 + exp(theta_j - theta_i)));
    ``elo``: the same on the Elo scale (1000 + 400 * log10-strength), as Chatbot Arena reports it;
    ``elo_low``/``elo_high``: percentile bootstrap interval (``nan`` when no bootstrap was run).
    """

    players: list
    theta: np.ndarray
    elo: np.ndarray
    elo_low: np.ndarray
    elo_high: np.ndarray
    games: np.ndarray
    wins: np.ndarray  # ties count half
    iterations: int
    converged: bool
    bootstrap: int
    confidence: float

    def rows(self) -> list[dict]:
        return [
            {
                "player": p,
                "theta": float(t),
                "elo": float(e),
                "elo_low": float(lo),
                "elo_high": float(hi),
                "games": float(g),
                "wins": float(w),
            }
            for p, t, e, lo, hi, g, w in zip(
                self.players,
                self.theta,
                self.elo,
                self.elo_low,
                self.elo_high,
                self.games,
                self.wins,
                strict=True,
            )
        ]


def _best_shift(theta: np.ndarray) -> np.ndarray:
    """Per row, the shift ``s`` with ``sum_i sigmoid(theta_i + s) = m / 2``: where the prior's
    virtual games (half won against strength 1) are best fitted, the real games being unaffected."""
    s = np.zeros(theta.shape[0])
    half = theta.shape[1] / 2.0
    for _ in range(50):
        q = 1.0 / (1.0 + np.exp(-(theta + s[:, None])))
        f = q.sum(axis=1) - half
        step = np.clip(f / np.maximum((q * (1 - q)).sum(axis=1), 1e-12), -1.0, 1.0)
        s -= step
        if np.abs(step).max() < 1e-13:
            break
    return s


def _bt_mm(wins: np.ndarray, prior: float, tol: float, max_iter: int) -> tuple[np.ndarray, int, bool]:
    """MM iterations (Hunter 2004) for a stack of win matrices ``wins[b, i, j]`` (i beat j, ties
    as halves). ``prior`` adds that many virtual games against a reference player of strength 1,
    half won, which keeps every strength finite when a player never wins or never loses. The real
    games do not depend on a common factor of all strengths, so after each MM step that factor is
    set to its best value: for the prior, the one where the players' expected share of the virtual
    games is one half (a few Newton steps); without a prior, geometric mean 1. (Rescaling to
    geometric mean 1 with a prior made the iterations stop short of the posterior mode, and not
    rescaling at all made them crawl along that direction.) Returns log-strengths, centred to mean 0."""
    b, m, _ = wins.shape
    games = wins + np.swapaxes(wins, 1, 2)
    w_i = wins.sum(axis=2) + prior / 2.0
    p = np.ones((b, m))
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        denom = (games / (p[:, :, None] + p[:, None, :])).sum(axis=2) + prior / (p + 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            new = np.where(denom > 0, w_i / np.where(denom > 0, denom, 1), p)
        new = np.maximum(new, 1e-300)
        new /= np.exp(np.log(new).mean(axis=1, keepdims=True))
        if prior > 0:
            new *= np.exp(_best_shift(np.log(new)))[:, None]
        change = np.abs(np.log(new) - np.log(p)).max()
        p = new
        if change < tol:
            converged = True
            break
    theta = np.log(p)
    return theta - theta.mean(axis=1, keepdims=True), it, converged


def bradley_terry(
    player_a: Any,
    player_b: Any,
    outcome: Any,
    *,
    prior: float = 1.0,
    bootstrap: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    tol: float = 1e-10,
    max_iter: int = 10_000,
) -> BradleyTerryResult:
    """Bradley-Terry strengths from pairwise games in long format.

    ``player_a``, ``player_b``: who met (any hashable labels, e.g. model names), one entry per
    game; ``outcome``: 1 if A won, 0 if B won, 0.5 for a tie (a tie counts half a win for each).
    Games of a player against itself are refused. Fitted by the MM algorithm (Hunter 2004) with
    ``prior`` virtual games against a reference player of strength 1 (0 gives the plain maximum-likelihood fit,
    which is finite only when every player both wins and loses). Confidence intervals come from
    ``bootstrap`` resamples of the games (seeded with ``seed``): resampling games with
    replacement is the same as drawing multinomial counts over the distinct (pair, outcome)
    cells, which is what is done, and every resample is fitted at once in a stacked MM.
    """
    a = _as_1d(player_a, "player_a")
    b = _as_1d(player_b, "player_b")
    out = _as_1d(outcome, "outcome", dtype=float)
    _same_length(player_a=a, player_b=b, outcome=out)
    if len(out) == 0:
        raise ValueError("no games to fit")
    if not np.isin(out, (0.0, 0.5, 1.0)).all():
        raise ValueError("outcome must be 1 (A won), 0 (B won) or 0.5 (tie)")
    if prior < 0:
        raise ValueError("prior must be >= 0")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    if bootstrap < 0:
        raise ValueError("bootstrap must be >= 0")
    if a.dtype.kind in "iuU" and b.dtype.kind in "iuU" and a.dtype.kind == b.dtype.kind:
        # integer codes or plain strings: index every game without a Python loop
        uniq, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
        players = uniq.tolist()
        ia, ib = inverse[: len(a)].astype(np.int64), inverse[len(a) :].astype(np.int64)
    else:
        a, b = a.astype(object), b.astype(object)
        try:
            players = sorted(set(a.tolist()) | set(b.tolist()))
        except TypeError:
            raise ValueError(
                "player labels must be mutually comparable (all strings or all numbers)"
            ) from None
        index = {p: i for i, p in enumerate(players)}
        ia = np.fromiter((index[x] for x in a), dtype=np.int64, count=len(a))
        ib = np.fromiter((index[x] for x in b), dtype=np.int64, count=len(b))
    if (ia == ib).any():
        raise ValueError("a player cannot play against itself (drop same-model comparisons)")
    m = len(players)
    # distinct cells: (a, b, outcome code) with their counts
    cell = (ia * m + ib) * 3 + (out * 2).astype(np.int64)
    cells, cell_counts = np.unique(cell, return_counts=True)
    c_out = (cells % 3) / 2.0
    c_ab = cells // 3
    c_a, c_b = c_ab // m, c_ab % m

    def win_matrices(weights: np.ndarray) -> np.ndarray:  # weights: (B, cells)
        stack = np.zeros((weights.shape[0], m * m))
        np.add.at(stack, (slice(None), c_a * m + c_b), weights * c_out)
        np.add.at(stack, (slice(None), c_b * m + c_a), weights * (1 - c_out))
        return stack.reshape(-1, m, m)

    counts = cell_counts[None, :].astype(float)
    if bootstrap:
        rng = np.random.default_rng(seed)
        draws = rng.multinomial(len(out), cell_counts / cell_counts.sum(), size=bootstrap).astype(float)
        counts = np.concatenate([counts, draws])
    # the data and its resamples in one stacked fit, to one tolerance: a resample identical to the
    # data gets exactly the point estimate, so an interval always holds its estimate
    wins = win_matrices(counts)
    fitted, iters, converged = _bt_mm(wins, prior, tol, max_iter)
    theta = fitted[0]
    games = (wins[0] + wins[0].T).sum(axis=1)
    won = wins[0].sum(axis=1)
    lo = np.full(m, np.nan)
    hi = np.full(m, np.nan)
    if bootstrap:
        alpha = (1 - confidence) / 2
        lo, hi = np.quantile(fitted[1:], [alpha, 1 - alpha], axis=0)
    order = np.argsort(-theta, kind="stable")
    to_elo = lambda t: ELO_BASE + ELO_SCALE * t  # noqa: E731
    return BradleyTerryResult(
        players=[players[i] for i in order],
        theta=theta[order],
        elo=to_elo(theta[order]),
        elo_low=to_elo(lo[order]),
        elo_high=to_elo(hi[order]),
        games=games[order],
        wins=won[order],
        iterations=iters,
        converged=converged,
        bootstrap=bootstrap,
        confidence=confidence,
    )


# --------------------------------------------------------------------------------------------
# bootstrap confidence intervals over items
#
# Every coefficient of a report is a function of column sums over items (tasks) of per-item
# vectors: label counts, self-coincidences, contributions to labeler-pair tables, per-task W. A
# bootstrap resample draws the items with replacement, so its sums are ``weights @ per_item`` with
# multinomial weights, and the coefficient is recomputed from those sums for all resamples at
# once. Identical item vectors are merged first (nominal labels take few patterns), so thousands
# of resamples of a large project cost a (resamples x patterns) product.

CI_RESAMPLES = 1000
CI_LEVEL = 0.95
_BOOTSTRAP_CELLS = 4_000_000  # weights per chunk of resamples
_MULTINOMIAL_MAX_ROWS = 256


def bootstrap_sums(per_item: Any, statistic, *, resamples: int = CI_RESAMPLES, seed: int = 0) -> np.ndarray:
    """``statistic`` of ``resamples`` item resamples (seeded). ``per_item``: items x p (dense, or
    scipy sparse); ``statistic(sums)`` takes the (chunk x p) column sums of the drawn items and
    returns one value (or row of values) per resample."""
    rng = np.random.default_rng(seed)
    n = per_item.shape[0]
    if sparse.issparse(per_item):
        rows, inverse = sparse.csr_matrix(per_item, dtype=float), None
        freq = np.ones(n)
    else:
        rows, inverse = np.unique(np.asarray(per_item, dtype=float), axis=0, return_inverse=True)
        inverse = inverse.ravel()
        freq = np.bincount(inverse, minlength=len(rows)).astype(float)
    n_rows = len(freq)
    chunk = max(1, min(resamples, _BOOTSTRAP_CELLS // max(n_rows, n, 1)))
    out = []
    done = 0
    while done < resamples:
        size = min(chunk, resamples - done)
        if n_rows <= _MULTINOMIAL_MAX_ROWS:  # few distinct items: draw how often each is picked
            weights = rng.multinomial(n, freq / freq.sum(), size=size).astype(float)
        else:  # draw the n items of each resample and count them (far cheaper than n binomials)
            picked = rng.integers(0, n, size=(size, n))
            if inverse is not None:
                picked = inverse[picked]
            offset = (np.arange(size) * n_rows)[:, None]
            weights = np.bincount((picked + offset).ravel(), minlength=size * n_rows)
            weights = weights.reshape(size, n_rows).astype(float)
        sums = (rows.T @ weights.T).T if sparse.issparse(rows) else weights @ rows
        out.append(np.asarray(statistic(np.asarray(sums))))
        done += size
    return np.concatenate(out)


def percentile_interval(values: np.ndarray, level: float = CI_LEVEL) -> tuple[float | None, float | None]:
    """(low, high) percentile interval of bootstrap values; (None, None) when the statistic is
    undefined in more than half of the resamples."""
    values = np.asarray(values, dtype=float)
    ok = values[np.isfinite(values)]
    if len(ok) == 0 or len(ok) < len(values) / 2:
        return None, None
    low, high = np.quantile(ok, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(low), float(high)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def nominal_intervals(
    counts: np.ndarray,
    *,
    fleiss_raters: int | None = None,
    resamples: int = CI_RESAMPLES,
    seed: int = 0,
    level: float = CI_LEVEL,
) -> dict[str, tuple[float | None, float | None]]:
    """Bootstrap intervals of percent agreement, nominal Krippendorff's alpha and Fleiss' kappa
    (on the items with ``fleiss_raters`` labels) from an items x categories count table of the
    pairable items (two or more labels each), with one set of resamples for all three."""
    c = np.asarray(counts, dtype=float)
    k = c.shape[1]
    m = c.sum(axis=1)
    c, m = c[m >= 2], m[m >= 2]
    if len(c) == 0:
        return {
            "percent_agreement": (None, None),
            "krippendorff_alpha": (None, None),
            "fleiss_kappa": (None, None),
        }
    r = fleiss_raters or 0
    modal = (m == r).astype(float) if r >= 2 else np.zeros(len(m))
    pairs = (c * (c - 1)).sum(axis=1)
    per_item = np.column_stack(
        [pairs, m * (m - 1), m, pairs / (m - 1), c, modal, modal * pairs, modal[:, None] * c]
    )

    def statistic(s: np.ndarray) -> np.ndarray:
        n, self_pairs, n_c = s[:, 2], s[:, 3], s[:, 4 : 4 + k]
        percent = _ratio(s[:, 0], s[:, 1])
        d_o = _ratio(n - self_pairs, n)
        d_e = _ratio(n * n - (n_c**2).sum(axis=1), n * (n - 1))
        alpha = np.where(d_e > 0, 1 - _ratio(d_o, d_e), np.nan)
        subjects, f_pairs, f_c = s[:, 4 + k], s[:, 5 + k], s[:, 6 + k :]
        if r >= 2:
            p_bar = _ratio(f_pairs, subjects * r * (r - 1))
            p_e = ((_ratio(f_c, (subjects * r)[:, None])) ** 2).sum(axis=1)
            fleiss = np.where((subjects > 0) & (p_e < 1), _ratio(p_bar - p_e, 1 - p_e), np.nan)
        else:
            fleiss = np.full(len(s), np.nan)
        return np.column_stack([percent, alpha, fleiss])

    boot = bootstrap_sums(per_item, statistic, resamples=resamples, seed=seed)
    return {
        name: percentile_interval(boot[:, i], level)
        for i, name in enumerate(("percent_agreement", "krippendorff_alpha", "fleiss_kappa"))
    }


def cohen_mean_interval(
    tix: np.ndarray,
    lix: np.ndarray,
    code: np.ndarray,
    k: int,
    n_labelers: int,
    *,
    min_shared: int,
    resamples: int = CI_RESAMPLES,
    seed: int = 0,
    level: float = CI_LEVEL,
) -> tuple[float | None, float | None]:
    """Bootstrap interval (over tasks) of the shared-task-weighted mean Cohen's kappa of the
    labeler pairs with at least ``min_shared`` shared tasks (the report's pairs)."""
    chunks = list(_label_pairs(tix, lix, code, k, n_labelers))
    if not chunks:
        return None, None
    task = np.concatenate([t for t, _ in chunks])
    key = np.concatenate([kk for _, kk in chunks])
    pair, cell = key // (k * k), key % (k * k)
    _, p_idx, shared = np.unique(pair, return_inverse=True, return_counts=True)
    ok = shared >= min_shared
    if not ok.any():
        return None, None
    col_of_pair = np.cumsum(ok) - 1
    use = ok[p_idx]
    items, item_idx = np.unique(task[use], return_inverse=True)
    n_pairs = int(ok.sum())
    per_item = sparse.csr_matrix(
        (np.ones(int(use.sum())), (item_idx, col_of_pair[p_idx[use]] * k * k + cell[use])),
        shape=(len(items), n_pairs * k * k),
    )

    def statistic(s: np.ndarray) -> np.ndarray:
        tables = s.reshape(len(s), n_pairs, k, k)
        kappas = cohen_kappa_tables(tables)
        weight = np.where(np.isfinite(kappas), tables.sum(axis=(-1, -2)), 0.0)
        return _ratio((np.nan_to_num(kappas) * weight).sum(axis=1), weight.sum(axis=1))

    return percentile_interval(bootstrap_sums(per_item, statistic, resamples=resamples, seed=seed), level)


def ordinal_alpha_interval(
    task: np.ndarray,
    ranks: np.ndarray,
    *,
    resamples: int = CI_RESAMPLES,
    seed: int = 0,
    level: float = CI_LEVEL,
) -> tuple[float | None, float | None]:
    """Bootstrap interval (over tasks) of Krippendorff's ordinal alpha with the (task, response)
    units of ``ranks`` (one ranking per row, long format) and the ranks as values. A resample's
    coincidence matrix is the sum of its tasks' coincidences; the ordinal metric is recomputed from
    its marginals."""
    rows, slots = np.nonzero(~np.isnan(ranks))
    if len(rows) == 0:
        return None, None
    kk = ranks.shape[1]
    units, u_idx = np.unique(task[rows] * kk + slots, return_inverse=True)
    vals, v_idx = np.unique(ranks[rows, slots], return_inverse=True)
    nv = len(vals)
    if nv > 64:
        return None, None
    c = np.zeros((len(units), nv))
    np.add.at(c, (u_idx, v_idx), 1)
    m = c.sum(axis=1)
    keep = m >= 2
    c, m, unit_task = c[keep], m[keep], units[keep] // kk
    if len(c) == 0:
        return None, None
    coinc = (c[:, :, None] * c[:, None, :] - c[:, :, None] * np.eye(nv)[None]) / (m - 1)[:, None, None]
    items, t_idx = np.unique(unit_task, return_inverse=True)
    per_item = np.zeros((len(items), nv * nv))
    np.add.at(per_item, t_idx, coinc.reshape(len(c), -1))
    pos = np.arange(nv)
    lo, hi = np.minimum.outer(pos, pos), np.maximum.outer(pos, pos)

    def statistic(s: np.ndarray) -> np.ndarray:
        o = s.reshape(len(s), nv, nv)
        n_c = o.sum(axis=2)
        n = n_c.sum(axis=1)
        cum = np.concatenate([np.zeros((len(s), 1)), np.cumsum(n_c, axis=1)], axis=1)
        delta = (cum[:, hi + 1] - cum[:, lo] - (n_c[:, :, None] + n_c[:, None, :]) / 2.0) ** 2
        d_o = _ratio((o * delta).sum(axis=(1, 2)), n)
        d_e = _ratio((n_c[:, :, None] * n_c[:, None, :] * delta).sum(axis=(1, 2)), n * (n - 1))
        return np.where(d_e > 0, 1 - _ratio(d_o, d_e), np.nan)

    return percentile_interval(bootstrap_sums(per_item, statistic, resamples=resamples, seed=seed), level)


def mean_interval(
    values: np.ndarray, *, resamples: int = CI_RESAMPLES, seed: int = 0, level: float = CI_LEVEL
) -> tuple[float | None, float | None]:
    """Bootstrap interval of the mean of per-item values (e.g. Kendall's W per task)."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return None, None
    per_item = np.column_stack([values, np.ones(len(values))])
    boot = bootstrap_sums(per_item, lambda s: _ratio(s[:, 0], s[:, 1]), resamples=resamples, seed=seed)
    return percentile_interval(boot, level)
