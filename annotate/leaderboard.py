"""A defensible leaderboard from pairwise votes between models (or any candidates).

Pure NumPy/SciPy; no ORM.

The model: Bradley-Terry with ties and "both bad" (Davidson 1970)
----------------------------------------------------------------------
Every model ``m`` has a strength ``theta_m``. A vote between ``a`` (left) and ``b`` (right) with
style covariates ``x`` (a vector, see below) has the gap ``d = theta_a - theta_b + gamma . x`` and

    P(a wins)    = exp(+d/2) / Z
    P(b wins)    = exp(-d/2) / Z
    P(tie)       = nu_tie    / Z
    P(both bad)  = nu_bad    / Z,     Z = exp(d/2) + exp(-d/2) + nu_tie + nu_bad

This is Davidson's model (``P(tie) ∝ nu * sqrt(pi_a * pi_b)`` with ``pi = exp(theta)``, divided
through by ``sqrt(pi_a pi_b)``) with a second tie-like outcome: a "both bad" vote is evidence that
the two are close, like a tie, but with its own rate. Without ties the model is plain Bradley-Terry
on the logit scale. Strengths are identified by a sum-to-zero constraint and a weak Gaussian prior
(``PRIOR_SD``: a model with one vote sits near the middle with a wide interval, not at the extreme
its first win suggests); ratings are reported on the Elo scale ``1000 + 400 / ln(10) * theta``.

Style control (as LMSYS does for Chatbot Arena, in our own code): the optional covariates are
per-vote differences of response features (length, markdown headers, lists, bold), each written as
``(f_a - f_b) / (f_a + f_b + 1)`` and standardised over the votes; ``gamma`` is fitted jointly, so
a model's strength is what is left after style.

Uncertainty: ``bootstrap`` refits on votes resampled with replacement (multinomial vote weights,
warm-started) and reports percentile intervals of ratings and ranks.

Robustness: ``top_rank_robustness`` finds few votes whose removal changes who is first. Exact for
small data (every subset up to ``exact_max`` votes, when that is at most ``exact_budget``
subsets); otherwise an influence approximation: for each challenger among the closest runners-up,
votes are ordered by their first-order influence on the gap ``theta_top - theta_challenger``
(``-(e_top - e_c)' H^-1 x_v * score_v``, ``H`` the Fisher information of the strengths at the fit),
and a binary search over "remove the k most helpful votes" with a real refit at every probe finds
the smallest such k. The approximate answer is an upper bound on the true minimum (the removal it
names really flips the top, by refit); the result says which method was used.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

A_WINS, B_WINS, TIE, BOTH_BAD = 0, 1, 2, 3
OUTCOMES = ("a", "b", "tie", "both_bad")
ELO_SCALE = 400.0 / math.log(10.0)
ELO_BASE = 1000.0
# A weak prior on every strength, theta ~ N(0, PRIOR_SD^2) (about +-350 Elo at one SD): it keeps a
# model with few votes, or only wins, from running off to an unbounded rating (a maximum-likelihood
# fit put one win at +2,800 Elo with a zero-width interval). A model with tens of votes is barely
# moved: the likelihood's curvature grows with its votes, the prior's stays 1 / PRIOR_SD^2.
# The style coefficients get the same prior: when style and model are confounded (one model always
# writes the longer, listier answer) the data cannot tell them apart, and without a prior on gamma
# the style terms took the whole difference, so a model that won every vote was rated equal to the
# one that lost every vote (and the tie was broken by index: the loser shown first). With it, the
# difference is shared between the model and its style as the priors say.
PRIOR_SD = 2.0
RIDGE = 1.0 / (2.0 * PRIOR_SD**2)
# Two ratings closer than this (half the 0.1 shown) are equal: the models share a rank.
RANK_TIE_ELO = 0.05

_HEADER = re.compile(r"^#{1,6}\s", re.MULTILINE)
_LIST = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s", re.MULTILINE)
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")

STYLE_FEATURES = ("length", "headers", "lists", "bold")


def style_features(text: str) -> np.ndarray:
    """Length in characters and markdown element counts of one response."""
    return np.array(
        [len(text), len(_HEADER.findall(text)), len(_LIST.findall(text)), len(_BOLD.findall(text))],
        dtype=float,
    )


def style_covariates(features_a: np.ndarray, features_b: np.ndarray) -> np.ndarray:
    """Votes x features: normalised differences, standardised over the votes (constant columns: 0)."""
    fa, fb = np.asarray(features_a, dtype=float), np.asarray(features_b, dtype=float)
    diff = (fa - fb) / (fa + fb + 1.0)
    sd = diff.std(axis=0)
    sd[sd == 0] = 1.0
    return (diff - diff.mean(axis=0)) / sd


@dataclass
class Votes:
    """Pairwise votes: model indices ``a``/``b`` (0..n_models-1), outcome codes, optional
    per-vote weights and covariates (votes x k)."""

    a: np.ndarray
    b: np.ndarray
    outcome: np.ndarray
    n_models: int
    weight: np.ndarray | None = None
    covariates: np.ndarray | None = None

    @classmethod
    def build(cls, a, b, outcome, n_models: int | None = None, weight=None, covariates=None) -> Votes:
        a = np.asarray(a, dtype=np.int64)
        b = np.asarray(b, dtype=np.int64)
        outcome = np.asarray(outcome, dtype=np.int64)
        if not len(a) == len(b) == len(outcome):
            raise ValueError("a, b and outcome must have the same length")
        if len(a) and (np.any(a == b) or outcome.min() < 0 or outcome.max() > 3):
            raise ValueError("a vote needs two different models and an outcome 0..3")
        n = int(max(a.max(initial=-1), b.max(initial=-1)) + 1) if n_models is None else n_models
        cov = None if covariates is None else np.asarray(covariates, dtype=float).reshape(len(a), -1)
        w = None if weight is None else np.asarray(weight, dtype=float)
        return cls(a, b, outcome, n, w, cov)

    def __len__(self) -> int:
        return len(self.a)

    def subset(self, keep: np.ndarray) -> Votes:
        return Votes(
            self.a[keep],
            self.b[keep],
            self.outcome[keep],
            self.n_models,
            None if self.weight is None else self.weight[keep],
            None if self.covariates is None else self.covariates[keep],
        )


@dataclass
class Fit:
    theta: np.ndarray
    gamma: np.ndarray
    nu_tie: float
    nu_bad: float
    log_likelihood: float
    converged: bool
    params: np.ndarray = field(repr=False)

    @property
    def ratings(self) -> np.ndarray:
        return ELO_BASE + ELO_SCALE * self.theta

    def ranking(self) -> np.ndarray:
        """Model indices, best first (ties in strength broken by index)."""
        return np.lexsort((np.arange(len(self.theta)), -self.theta))

    def ranks(self) -> np.ndarray:
        """Per model: 1 + the number of models rated above it (equal ratings share a rank)."""
        r = self.ratings
        return 1 + (r[None, :] > r[:, None] + RANK_TIE_ELO).sum(axis=1)

    def probabilities(self, a, b, covariates=None) -> np.ndarray:
        """votes x 4: P(a wins), P(b wins), P(tie), P(both bad)."""
        a, b = np.asarray(a), np.asarray(b)
        d = self.theta[a] - self.theta[b]
        if covariates is not None and len(self.gamma):
            d = d + np.asarray(covariates, dtype=float) @ self.gamma
        return _probs(d, self.nu_tie, self.nu_bad)


def _probs(d: np.ndarray, nu_tie: float, nu_bad: float) -> np.ndarray:
    # stable: divide everything by exp(|d|/2)
    h = np.abs(d) / 2
    e_pos = np.exp(d / 2 - h)
    e_neg = np.exp(-d / 2 - h)
    t = nu_tie * np.exp(-h)
    bb = nu_bad * np.exp(-h)
    z = e_pos + e_neg + t + bb
    return np.stack([e_pos, e_neg, t, bb], axis=1) / z[:, None]


def _unpack(params: np.ndarray, n: int, k: int):
    theta = params[:n]
    gamma = params[n : n + k]
    return theta, gamma, params[n + k], params[n + k + 1]


def _negll_grad(params, votes: Votes, w: np.ndarray, use_tie: bool, use_bad: bool):
    n = votes.n_models
    k = 0 if votes.covariates is None else votes.covariates.shape[1]
    theta, gamma, log_nt, log_nb = _unpack(params, n, k)
    d = theta[votes.a] - theta[votes.b]
    if k:
        d = d + votes.covariates @ gamma
    nu_t = math.exp(log_nt) if use_tie else 0.0
    nu_b = math.exp(log_nb) if use_bad else 0.0
    p = _probs(d, nu_t, nu_b)
    o = votes.outcome
    ll = np.log(np.maximum(p[np.arange(len(o)), o], 1e-300))
    negll = -(w * ll).sum() + RIDGE * (theta @ theta) + RIDGE * (gamma @ gamma)
    # d log p_o / d d = y_o/2 - (p_a - p_b)/2 where y = +1, -1, 0, 0
    y = np.select([o == A_WINS, o == B_WINS], [1.0, -1.0], 0.0)
    g_d = w * (y / 2 - (p[:, 0] - p[:, 1]) / 2)
    grad = np.zeros_like(params)
    grad[:n] = -(
        np.bincount(votes.a, weights=g_d, minlength=n) - np.bincount(votes.b, weights=g_d, minlength=n)
    )
    grad[:n] += 2 * RIDGE * theta
    if k:
        grad[n : n + k] = -(votes.covariates.T @ g_d) + 2 * RIDGE * gamma
    # d log p_o / d log nu_t = [o == tie] - p_tie
    if use_tie:
        grad[n + k] = -(w * ((o == TIE) - p[:, 2])).sum()
    if use_bad:
        grad[n + k + 1] = -(w * ((o == BOTH_BAD) - p[:, 3])).sum()
    return negll, grad


def fit_davidson(
    votes: Votes, *, weight: np.ndarray | None = None, init: Fit | None = None, tol: float = 1e-9
) -> Fit:
    """Maximum-likelihood strengths, style coefficients and tie rates (L-BFGS, analytic gradient).

    A tie rate is fitted only when that outcome occurs (otherwise it is 0: plain Bradley-Terry).
    """
    n = votes.n_models
    k = 0 if votes.covariates is None else votes.covariates.shape[1]
    w = np.ones(len(votes)) if votes.weight is None else votes.weight.astype(float)
    if weight is not None:
        w = w * weight
    use_tie = bool((w * (votes.outcome == TIE)).sum() > 0)
    use_bad = bool((w * (votes.outcome == BOTH_BAD)).sum() > 0)
    x0 = np.zeros(n + k + 2) if init is None else init.params.copy()
    res = minimize(
        _negll_grad,
        x0,
        args=(votes, w, use_tie, use_bad),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 2000, "ftol": tol, "gtol": 1e-8},
    )
    theta, gamma, log_nt, log_nb = _unpack(res.x, n, k)
    theta = theta - theta.mean()
    params = res.x.copy()
    params[:n] = theta
    return Fit(
        theta=theta,
        gamma=gamma.copy(),
        nu_tie=math.exp(log_nt) if use_tie else 0.0,
        nu_bad=math.exp(log_nb) if use_bad else 0.0,
        log_likelihood=-float(res.fun) + RIDGE * float(theta @ theta) + RIDGE * float(gamma @ gamma),
        converged=bool(res.success),
        params=params,
    )


def _fisher_theta(fit: Fit, votes: Votes, w: np.ndarray) -> np.ndarray:
    """Fisher information of the strengths (other parameters held at the fit): sum w Var(y/2) x x'."""
    n = votes.n_models
    p = fit.probabilities(votes.a, votes.b, votes.covariates)
    var = (p[:, 0] + p[:, 1]) / 4 - ((p[:, 0] - p[:, 1]) / 2) ** 2
    h = np.zeros((n, n))
    wv = w * var
    np.add.at(h, (votes.a, votes.a), wv)
    np.add.at(h, (votes.b, votes.b), wv)
    np.add.at(h, (votes.a, votes.b), -wv)
    np.add.at(h, (votes.b, votes.a), -wv)
    return h + np.ones((n, n)) / n + RIDGE * np.eye(n)  # the sum-to-zero direction is pinned


def covariance(fit: Fit, votes: Votes) -> np.ndarray:
    """Approximate covariance of the strengths (inverse Fisher information)."""
    w = np.ones(len(votes)) if votes.weight is None else votes.weight
    return np.linalg.inv(_fisher_theta(fit, votes, w))


@dataclass
class Leaderboard:
    names: list[str]
    fit: Fit
    rating_ci: np.ndarray  # models x 2
    rank_ci: np.ndarray  # models x 2 (1 = first)
    n_votes: int
    robustness: dict | None = None

    def rows(self) -> list[dict]:
        order = self.fit.ranking()
        rank = self.fit.ranks()
        return [
            {
                "rank": int(rank[m]),
                "model": self.names[m],
                "rating": round(float(self.fit.ratings[m]), 1),
                "rating_low": round(float(self.rating_ci[m, 0]), 1),
                "rating_high": round(float(self.rating_ci[m, 1]), 1),
                "rank_low": int(self.rank_ci[m, 0]),
                "rank_high": int(self.rank_ci[m, 1]),
            }
            for m in order
        ]

    def robustness_line(self) -> str:
        r = self.robustness
        if not r:
            return "robustness: not computed"
        if r["votes_to_flip"] is None:
            return f"robustness: no removal of up to {r['searched_up_to']} votes changes the top rank ({r['method']})"
        return (
            f"robustness: removing {r['votes_to_flip']} of {self.n_votes} votes puts "
            f"{self.names[r['new_top']]} above {self.names[r['top']]} ({r['method']})"
        )


def bootstrap(
    votes: Votes, fit: Fit, *, rounds: int = 100, seed: int = 0, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile intervals of ratings and ranks over ``rounds`` resamplings of the votes."""
    rng = np.random.default_rng(seed)
    n = len(votes)
    ratings = np.empty((rounds, votes.n_models))
    ranks = np.empty((rounds, votes.n_models))
    for i in range(rounds):
        counts = rng.multinomial(n, np.full(n, 1.0 / n)).astype(float)
        f = fit_davidson(votes, weight=counts, init=fit)
        ratings[i] = f.ratings
        ranks[i] = f.ranks()
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return (
        np.stack([np.percentile(ratings, lo, axis=0), np.percentile(ratings, hi, axis=0)], axis=1),
        np.stack([np.percentile(ranks, lo, axis=0), np.percentile(ranks, hi, axis=0)], axis=1).round(),
    )


def _top(votes: Votes, keep: np.ndarray, init: Fit | None) -> int:
    return int(fit_davidson(votes.subset(keep), init=init).ranking()[0])


def top_rank_robustness(
    votes: Votes,
    fit: Fit | None = None,
    *,
    exact_max: int = 3,
    exact_budget: int = 5000,
    challengers: int = 3,
) -> dict:
    """The fewest votes whose removal changes the top model (see the module docstring).

    Returns ``{"votes_to_flip": k or None, "removed": [vote indices], "top", "new_top", "method",
    "searched_up_to"}``.
    """
    fit = fit or fit_davidson(votes)
    n = len(votes)
    top = int(fit.ranking()[0])
    everything = np.ones(n, dtype=bool)
    budget_ok = sum(math.comb(n, k) for k in range(1, exact_max + 1)) <= exact_budget
    if budget_ok:
        for k in range(1, exact_max + 1):
            for subset in itertools.combinations(range(n), k):
                keep = everything.copy()
                keep[list(subset)] = False
                new_top = _top(votes, keep, fit)
                if new_top != top:
                    return {
                        "votes_to_flip": k,
                        "removed": list(subset),
                        "top": top,
                        "new_top": new_top,
                        "method": "exact",
                        "searched_up_to": k,
                    }
        return {
            "votes_to_flip": None,
            "removed": [],
            "top": top,
            "new_top": top,
            "method": "exact",
            "searched_up_to": exact_max,
        }
    w = np.ones(n) if votes.weight is None else votes.weight
    cov = np.linalg.inv(_fisher_theta(fit, votes, w))
    p = fit.probabilities(votes.a, votes.b, votes.covariates)
    o = votes.outcome
    y = np.select([o == A_WINS, o == B_WINS], [1.0, -1.0], 0.0)
    score = w * (y / 2 - (p[:, 0] - p[:, 1]) / 2)  # d loglik / d gap, per vote
    best: dict | None = None
    for c in fit.ranking()[1 : 1 + challengers]:
        e = np.zeros(votes.n_models)
        e[top], e[c] = 1.0, -1.0
        u = cov @ e
        # removing vote v moves theta by about -H^-1 x_v score_v; its effect on the gap:
        effect = -(u[votes.a] - u[votes.b]) * score
        order = np.argsort(effect, kind="stable")
        helpful = order[effect[order] < 0]
        if not len(helpful):
            continue

        def flips(k: int, helpful=helpful) -> int | None:
            keep = everything.copy()
            keep[helpful[:k]] = False
            t = _top(votes, keep, fit)
            return t if t != top else None

        if flips(len(helpful)) is None:
            continue
        lo, hi = 0, len(helpful)  # flips(hi) holds, flips(lo) does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if flips(mid) is not None:
                hi = mid
            else:
                lo = mid
        if best is None or hi < best["votes_to_flip"]:
            best = {
                "votes_to_flip": hi,
                "removed": sorted(int(v) for v in helpful[:hi]),
                "top": top,
                "new_top": flips(hi),
                "method": "influence approximation (upper bound)",
                "searched_up_to": len(helpful),
            }
    return best or {
        "votes_to_flip": None,
        "removed": [],
        "top": top,
        "new_top": top,
        "method": "influence approximation (upper bound)",
        "searched_up_to": n,
    }


def leaderboard(
    votes: Votes,
    names: list[str] | None = None,
    *,
    bootstrap_rounds: int = 100,
    seed: int = 0,
    robustness: bool = True,
) -> Leaderboard:
    """Fit, bootstrap intervals and (optionally) the robustness line, in one call."""
    names = names or [str(i) for i in range(votes.n_models)]
    f = fit_davidson(votes)
    rating_ci, rank_ci = bootstrap(votes, f, rounds=bootstrap_rounds, seed=seed)
    rob = top_rank_robustness(votes, f) if robustness else None
    return Leaderboard(names, f, rating_ci, rank_ci, len(votes), rob)
