"""Active pairs: which comparisons to ask for next, by expected information.

Pure NumPy; no ORM, no leasing. The leasing path will call ``order_tasks`` (see "Leasing" below).

Information of a pair
---------------------
Candidates (or the models behind them) have Bradley-Terry strengths ``theta`` with a Laplace
posterior ``N(theta_hat, S)`` (``fit_bt``: Newton's method on a win-count matrix with a Gaussian
prior ``theta ~ N(0, prior_sd^2)``, so the covariance exists before any vote). One more vote on
pair (i, j) is a Bernoulli observation of the gap ``d = theta_i - theta_j`` with Fisher information
``p (1 - p)``, ``p = sigmoid(d_hat)``. Its expected reduction of the gap's variance ``v`` is::

    info(i, j) = v^2 p (1 - p) / (1 + v p (1 - p))        (v = S_ii + S_jj - 2 S_ij)

large when the two are close (p near 1/2) and their order is uncertain (large v). A task with few
votes gets a bonus ``few_votes_bonus / (1 + labels)`` so that pairs with no model evidence (new
candidates, reward-model-free projects) still rank by "too few votes".

A reward model's uncertainty plugs in the same way: pass ``gap_mean`` / ``gap_var`` per task
instead of strengths (``pair_information`` takes either).

Leasing
-------
``order_tasks`` returns task ids in the order leasing should offer them. It keeps the leasing
invariants:

* no over-assignment: tasks whose ``labels + open_leases`` reached ``target`` are left out;
* fewest-labels-first stays the default (``policy="fewest_labels"``);
* no starvation under ``policy="active"``: every ``explore_every``-th slot is given to the task with
  the fewest labels (oldest id first) that is not placed yet, so every open task moves up by at
  least one slot per ``explore_every`` leases whatever its information.

How leasing uses it: ``task_claim_next`` orders open tasks by ``(claims, -priority, id)`` and
``annotate.services.task_order`` keeps ``Task.priority`` at ``pair_information`` of the task's two
models (from a ``fit_bt`` on the project's votes) plus a bonus for model pairs with few votes, so
the database index serves the order and the row locking stays where it is. ``order_tasks`` is the
same policy as a pure function (with an explicit exploration slot), kept as the reference the
invariant tests check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

POLICIES = ("fewest_labels", "active")


@dataclass(frozen=True)
class BTModel:
    theta: np.ndarray
    cov: np.ndarray

    def gap(self, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        i, j = np.asarray(i), np.asarray(j)
        mean = self.theta[i] - self.theta[j]
        var = self.cov[i, i] + self.cov[j, j] - 2 * self.cov[i, j]
        return mean, np.maximum(var, 0.0)


def fit_bt(wins: np.ndarray, *, prior_sd: float = 1.5, iters: int = 50, tol: float = 1e-10) -> BTModel:
    """MAP Bradley-Terry strengths from ``wins[i, j]`` (times i beat j; a tie may count 0.5 each
    way) by Newton's method, with the Laplace covariance."""
    wins = np.asarray(wins, dtype=float)
    n = wins.shape[0]
    games = wins + wins.T
    theta = np.zeros(n)
    prec = 1.0 / prior_sd**2
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(theta[:, None] - theta[None, :])))
        grad = (wins - games * p).sum(axis=1) - prec * theta
        w = games * p * (1 - p)
        hess = np.diag(w.sum(axis=1) + prec) - w
        step = np.linalg.solve(hess, grad)
        theta = theta + step
        if np.abs(step).max() < tol:
            break
    p = 1.0 / (1.0 + np.exp(-(theta[:, None] - theta[None, :])))
    w = games * p * (1 - p)
    hess = np.diag(w.sum(axis=1) + prec) - w
    return BTModel(theta, np.linalg.inv(hess))


def pair_information(
    i=None,
    j=None,
    *,
    model: BTModel | None = None,
    gap_mean: np.ndarray | None = None,
    gap_var: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    few_votes_bonus: float = 0.0,
) -> np.ndarray:
    """Expected information of one more vote on each pair (vectorised; see the module docstring)."""
    if model is not None:
        gap_mean, gap_var = model.gap(i, j)
    if gap_mean is None or gap_var is None:
        raise ValueError("pass a model with pair indices, or gap_mean and gap_var")
    gap_mean, gap_var = np.asarray(gap_mean, dtype=float), np.asarray(gap_var, dtype=float)
    p = 1.0 / (1.0 + np.exp(-gap_mean))
    f = p * (1 - p)
    shrink = gap_var * f / (1 + gap_var * f)  # share of the gap's variance one vote removes
    misorder = ndtr(-np.abs(gap_mean) / np.sqrt(np.maximum(gap_var, 1e-300)))
    info = misorder * shrink
    if labels is not None and few_votes_bonus:
        info = info + few_votes_bonus / (1.0 + np.asarray(labels, dtype=float))
    return info


def select_pairs(
    model: BTModel,
    pairs: np.ndarray,
    k: int,
    *,
    rng: np.random.Generator | None = None,
    explore: float = 0.0,
) -> np.ndarray:
    """Indices into ``pairs`` (m x 2) of ``k`` votes to ask for next, chosen greedily by the expected
    drop in the summed misordering probability over *all* pairs.

    A vote on pair c shrinks the variance of every gap it is correlated with (rank-one Laplace
    update of the gaps' covariance ``G = D S D'``): gap l's variance drops by
    ``G[l, c]^2 f_c / (1 + f_c G[c, c])``; the score of c is the sum over l of the resulting drop in
    ``Phi(-|mu_l| / sigma_l)``. After each pick ``G`` is updated as if the vote had been seen (means
    unchanged), so one batch spreads over different pairs. A pair may be picked again only when it
    still scores best.

    ``explore``: the share of picks drawn uniformly at random instead (each pick independently;
    the covariance is updated for them too, so the greedy picks account for them). The greedy
    score trusts the fitted gaps: on a pair of near-equal models the fitted gap keeps wandering at
    about one standard error, so such pairs keep scoring well and soak up votes, while the pairs
    the fit wrongly believes settled are never asked again. A small uniform share bounds both
    failures. On ``bench/active_pairs.py`` (20 models, 8 seeds x 3 vote streams, votes until Kendall
    tau >= 0.9) a share of 0.1 needed fewer votes than uniform on 7 of 8 seeds, median 0.72x and
    mean 0.80x uniform's; the plain greedy 6 of 8, 0.71x and 0.89x. The figures are noisy: a
    seed's first crossing of 0.9 moves by hundreds of votes from one vote stream to the next.
    """
    pairs = np.asarray(pairs)
    n = len(model.theta)
    d = np.zeros((len(pairs), n))
    rows = np.arange(len(pairs))
    d[rows, pairs[:, 0]] = 1.0
    d[rows, pairs[:, 1]] = -1.0
    g = d @ model.cov @ d.T
    mu = d @ model.theta
    p = 1.0 / (1.0 + np.exp(-mu))
    f = p * (1 - p)
    if not 0.0 <= explore <= 1.0:
        raise ValueError("explore is a share: 0 to 1")
    rng = rng or np.random.default_rng(0)
    jitter = rng.random(len(pairs)) * 1e-12
    chosen = []
    for _ in range(k):
        if explore and rng.random() < explore:
            c = int(rng.integers(len(pairs)))
            chosen.append(c)
            gc = g[:, c].copy()
            g = g - np.outer(gc, gc) * (f[c] / (1 + f[c] * gc[c]))
            continue
        var = np.maximum(np.diag(g), 1e-300)
        base = ndtr(-np.abs(mu) / np.sqrt(var))
        drop = g**2 * (f / (1 + f * np.diag(g)))[None, :]  # [l, c]: variance drop of gap l by a vote on c
        new_var = np.maximum(var[:, None] - drop, 1e-300)
        gain = (base[:, None] - ndtr(-np.abs(mu)[:, None] / np.sqrt(new_var))).sum(axis=0) + jitter
        c = int(np.argmax(gain))
        chosen.append(c)
        gc = g[:, c].copy()
        g = g - np.outer(gc, gc) * (f[c] / (1 + f[c] * gc[c]))
    return np.array(chosen)


@dataclass(frozen=True)
class TaskInfo:
    """What ordering needs of a task: its candidates' model indices, labels so far, open leases,
    the target number of labels."""

    task_id: int
    model_a: int | None
    model_b: int | None
    labels: int = 0
    open_leases: int = 0
    target: int = 1


def order_tasks(
    tasks: Sequence[TaskInfo],
    *,
    model: BTModel | None = None,
    policy: str = "fewest_labels",
    explore_every: int = 4,
    few_votes_bonus: float = 0.05,
    limit: int | None = None,
) -> list[int]:
    """Task ids in the order to offer them (see "Leasing" in the module docstring)."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}")
    if explore_every < 1:
        raise ValueError("explore_every must be at least 1")
    open_tasks = [t for t in tasks if t.labels + t.open_leases < t.target]
    fewest = sorted(open_tasks, key=lambda t: (t.labels + t.open_leases, t.task_id))
    if policy == "fewest_labels" or model is None or not open_tasks:
        out = [t.task_id for t in fewest]
        return out[:limit] if limit is not None else out
    has_model = np.array([t.model_a is not None and t.model_b is not None for t in open_tasks])
    ia = np.array([t.model_a if t.model_a is not None else 0 for t in open_tasks])
    ib = np.array([t.model_b if t.model_b is not None else 0 for t in open_tasks])
    labels = np.array([t.labels + t.open_leases for t in open_tasks], dtype=float)
    info = pair_information(ia, ib, model=model, labels=labels, few_votes_bonus=few_votes_bonus)
    # tasks without a model pair rank by the few-votes bonus alone
    info = np.where(has_model, info, few_votes_bonus / (1.0 + labels))
    ids = np.array([t.task_id for t in open_tasks])
    by_info = [open_tasks[k] for k in np.lexsort((ids, -info))]
    placed: set[int] = set()
    out: list[int] = []
    fi = ii = 0
    total = len(open_tasks) if limit is None else min(limit, len(open_tasks))
    while len(out) < total:
        explore = (len(out) + 1) % explore_every == 0
        source, idx = (fewest, fi) if explore else (by_info, ii)
        while source[idx].task_id in placed:
            idx += 1
        t = source[idx]
        placed.add(t.task_id)
        out.append(t.task_id)
        if explore:
            fi = idx + 1
        else:
            ii = idx + 1
    return out
