"""A reliability model for pairwise preference labels (Dawid-Skene style, fitted by EM).

Pure NumPy; no ORM. Callers hand in flat label arrays (the export compiler and the benches do).

The data
--------
An *item* is one comparison of two candidates in slot order (A, B). Each *label* is one labeler's
response on one item: ``A`` (0), ``B`` (1), ``TIE`` (2) or ``BOTH_BAD`` (3), with an optional
strength 1..3 for A/B answers (0: none). Judges enter the model exactly like human labelers: give
them their own labeler ids.

The model
---------
Every item ``i`` has a true class ``z_i`` in {A, B, tie, both-bad} with prior ``pi``. Labeler ``j``
answering item ``i`` *knows* the answer with probability ``c_ij = sigmoid(alpha_j - beta_i)``
(``alpha_j``: the labeler's competence; ``beta_i``: the item's difficulty) and then reports
``z_i``; otherwise the labeler *guesses* from a personal distribution ``g_j`` over the four answers.
``g_j`` carries the labeler's position bias (``g_j[A]`` against ``g_j[B]``) and tie propensity
(``g_j[tie]``); it is over *display* positions when ``Labels.swapped`` says which labels were given
with B shown on the left (so "always picks the left one" is found whatever the shuffling); a spammer is a labeler with low ``alpha_j`` (always guessing). The strength of an
A/B answer is drawn from ``h_know`` when the labeler knew and from ``h_guess`` when guessing (both
shared by all labelers), so "strong" answers can carry more evidence than "slight" ones when the
data says so::

    P(r, s | z) = c * [r == z] * h_know[s]  +  (1 - c) * g_j[r] * h_guess[s]

(the strength factor is 1 for answers without a strength). This is MACE (Hovy et al. 2013) with a
Rasch-style item difficulty and strength, over four classes.

EM: the E-step computes each item's posterior over ``z``; the M-step updates ``pi``, ``g`` and the
strength tables in closed form (with Dirichlet smoothing), and ``alpha``/``beta`` by a few diagonal
Newton steps on the expected "knew it" indicators with Gaussian priors (``alpha ~ N(1, 1.5^2)``,
``beta ~ N(0, 1)``: an item seen by one labeler keeps difficulty 0). Everything is vectorised over
labels with ``np.bincount``.

Outputs
-------
* ``posterior`` (items x 4) and ``p_a``: P(A preferred | a strict preference) =
  ``q_A / (q_A + q_B)``; the soft label an export writes as ``p_chosen``.
* ``labeler_estimates()``: per labeler ``accuracy`` (the expected share of their answers equal to
  the true class on the items they labeled), competence, position bias ``g[A] - g[B]`` (normalised
  over A/B), tie propensity ``g[tie]``, label count and ``flagged`` (accuracy under the threshold).
  Flagging never drops anything: managers decide.
* ``weights``: per labeler vote weight ``log((K - 1) * acc / (1 - acc))`` clipped at 0 (the optimal
  weight for symmetric noise); ``weighted_vote`` aggregates with them.

From annotations to labels: ``LabelsBuilder`` is the one place where a verdict on a pair becomes a
label (item per (task, slot-A candidate, slot-B candidate), strength only on A/B answers, ``swapped``
from the shown order); the export compiler (``training.compiler.fit_reliability``) and the
agreement report (``annotate.services.reports``) both fill one. ``flag_threshold()`` is the
accuracy under which a labeler is flagged (setting ``PREFHUB_RELIABILITY_THRESHOLD``, default 0.6).

Incremental use: ``fit(..., warm=previous_result)`` starts from the previous parameters of the
labelers and items it knows (new ones start at the priors) and usually converges in a few
iterations, so a model can be refreshed as labels arrive.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

A, B, TIE, BOTH_BAD = 0, 1, 2, 3
K = 4
CLASS_NAMES = ("a", "b", "tie", "both_bad")
ALPHA_PRIOR = (1.0, 1.5)  # mean, sd
BETA_PRIOR_SD = 1.0
_EPS = 1e-12
DEFAULT_THRESHOLD = 0.6


def flag_threshold() -> float:
    """The accuracy under which the model flags a labeler (``PREFHUB_RELIABILITY_THRESHOLD``)."""
    from django.conf import settings

    return float(getattr(settings, "PREFHUB_RELIABILITY_THRESHOLD", DEFAULT_THRESHOLD))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class Labels:
    """Flat label arrays. ``item`` and ``labeler`` are external ids (any hashable ints)."""

    item: np.ndarray
    labeler: np.ndarray
    response: np.ndarray
    strength: np.ndarray
    swapped: np.ndarray | None = None  # True where the labeler saw B on the left (display order)

    @classmethod
    def from_lists(cls, item, labeler, response, strength=None, swapped=None) -> Labels:
        item = np.asarray(item, dtype=np.int64)
        labeler = np.asarray(labeler, dtype=np.int64)
        response = np.asarray(response, dtype=np.int64)
        strength = (
            np.zeros(len(item), dtype=np.int64) if strength is None else np.asarray(strength, dtype=np.int64)
        )
        if not (len(item) == len(labeler) == len(response) == len(strength)):
            raise ValueError("item, labeler, response and strength must have the same length")
        if len(response) and (response.min() < 0 or response.max() >= K):
            raise ValueError("response must be 0 (A), 1 (B), 2 (tie) or 3 (both bad)")
        if len(strength) and (strength.min() < 0 or strength.max() > 3):
            raise ValueError("strength must be 0 (none) or 1..3")
        strength = np.where(response < TIE, strength, 0)  # a tie has no strength
        swapped = None if swapped is None else np.asarray(swapped, dtype=bool)
        if swapped is not None and len(swapped) != len(item):
            raise ValueError("swapped must have one entry per label")
        return cls(item, labeler, response, strength, swapped)

    def __len__(self) -> int:
        return len(self.item)


@dataclass
class ReliabilityResult:
    item_ids: np.ndarray
    labeler_ids: np.ndarray
    posterior: np.ndarray  # items x K
    prior: np.ndarray  # K
    alpha: np.ndarray  # labelers
    beta: np.ndarray  # items
    guess: np.ndarray  # labelers x K
    h_know: np.ndarray  # 4 (index 0 unused)
    h_guess: np.ndarray
    accuracy: np.ndarray  # labelers
    label_counts: np.ndarray
    iterations: int
    converged: bool
    log_likelihood: float
    threshold: float = 0.6
    _item_index: dict = field(default_factory=dict, repr=False)
    _labeler_index: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self._item_index = {int(x): i for i, x in enumerate(self.item_ids)}
        self._labeler_index = {int(x): j for j, x in enumerate(self.labeler_ids)}

    @property
    def p_a(self) -> np.ndarray:
        """P(A preferred | one of A, B is preferred), per item."""
        qa, qb = self.posterior[:, A], self.posterior[:, B]
        return qa / np.maximum(qa + qb, _EPS)

    @property
    def map_class(self) -> np.ndarray:
        return self.posterior.argmax(axis=1)

    @property
    def weights(self) -> np.ndarray:
        acc = np.clip(self.accuracy, 1e-6, 1 - 1e-6)
        return np.maximum(np.log((K - 1) * acc / (1 - acc)), 0.0)

    def weight_of(self, labeler_id: int, default: float = 0.0) -> float:
        j = self._labeler_index.get(int(labeler_id))
        return default if j is None else float(self.weights[j])

    def item_posterior(self, item_id: int) -> np.ndarray | None:
        i = self._item_index.get(int(item_id))
        return None if i is None else self.posterior[i]

    def labeler_estimates(self, threshold: float | None = None) -> list[dict]:
        """One dict per labeler, worst accuracy first. ``flagged`` only marks; nothing is dropped."""
        threshold = self.threshold if threshold is None else threshold
        g = self.guess
        ab = np.maximum(g[:, A] + g[:, B], _EPS)
        weights = self.weights
        out = [
            {
                "labeler_id": int(self.labeler_ids[j]),
                "accuracy": round(float(self.accuracy[j]), 6),
                "competence": round(float(_sigmoid(self.alpha[j])), 6),
                "position_bias": round(float((g[j, A] - g[j, B]) / ab[j]), 6),
                "tie_propensity": round(float(g[j, TIE]), 6),
                "labels": int(self.label_counts[j]),
                "weight": round(float(weights[j]), 6),
                "flagged": bool(self.accuracy[j] < threshold),
            }
            for j in range(len(self.labeler_ids))
        ]
        return sorted(out, key=lambda r: (r["accuracy"], r["labeler_id"]))


class LabelsBuilder:
    """Collects verdicts on pairs, one at a time, as the model's labels.

    ``add(task_id=, labeler_id=, first=, second=, verdict=, ...)``: ``first``/``second`` are the
    pair's candidate ids in slot order (A, B) and ``verdict`` one of ``CLASS_NAMES`` relative to
    them. ``items`` maps (task id, first, second) to the model's item id; ``judges`` holds the
    labeler ids added with ``judge=True`` (AI judges enter the model like labelers).
    """

    def __init__(self) -> None:
        self.items: dict[tuple[int, int, int], int] = {}
        self.judges: set[int] = set()
        self._item: list[int] = []
        self._labeler: list[int] = []
        self._response: list[int] = []
        self._strength: list[int] = []
        self._swapped: list[bool] = []

    def __len__(self) -> int:
        return len(self._item)

    def add(
        self,
        *,
        task_id: int,
        labeler_id: int,
        first: int,
        second: int,
        verdict: str,
        strength: int | None = None,
        shown_order: list | None = None,
        judge: bool = False,
    ) -> None:
        response = CLASS_NAMES.index(verdict)  # ValueError on anything else
        item = self.items.setdefault((int(task_id), int(first), int(second)), len(self.items))
        shown_at = {cid: k for k, cid in enumerate(shown_order)} if isinstance(shown_order, list) else {}
        self._item.append(item)
        self._labeler.append(int(labeler_id))
        self._response.append(response)
        self._strength.append(strength if response < TIE and strength in (1, 2, 3) else 0)
        self._swapped.append(first in shown_at and second in shown_at and shown_at[first] > shown_at[second])
        if judge:
            self.judges.add(int(labeler_id))

    def labels(self) -> Labels | None:
        if not self._item:
            return None
        return Labels.from_lists(self._item, self._labeler, self._response, self._strength, self._swapped)

    def fit(self, *, threshold: float | None = None, **kwargs) -> ReliabilityResult | None:
        """The fitted model (None without labels); ``threshold`` defaults to ``flag_threshold()``."""
        labels = self.labels()
        if labels is None:
            return None
        return fit(labels, threshold=flag_threshold() if threshold is None else threshold, **kwargs)


def _index(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, inv = np.unique(ids, return_inverse=True)
    return uniq, inv


def fit(
    labels: Labels,
    *,
    warm: ReliabilityResult | None = None,
    max_iter: int = 200,
    tol: float = 1e-6,
    threshold: float = DEFAULT_THRESHOLD,
    item_difficulty: bool = True,
) -> ReliabilityResult:
    """Fit the model by EM. ``warm``: a previous result to start from (incremental update)."""
    item_ids, it = _index(labels.item)
    labeler_ids, lb = _index(labels.labeler)
    r, s = labels.response, labels.strength
    n_items, n_lab = len(item_ids), len(labeler_ids)
    has_s = s > 0
    onehot = np.zeros((len(r), K))
    onehot[np.arange(len(r)), r] = 1.0
    # guesses live in display positions: a labeler who saw B on the left and answered B picked "left"
    swapped = np.zeros(len(r), dtype=bool) if labels.swapped is None else labels.swapped
    rd = np.where(swapped & (r < TIE), 1 - r, r)
    onehot_d = np.zeros((len(r), K))
    onehot_d[np.arange(len(r)), rd] = 1.0

    alpha = np.full(n_lab, ALPHA_PRIOR[0])
    beta = np.zeros(n_items)
    guess = np.full((n_lab, K), 1.0 / K)
    h_know = np.full(4, 1.0 / 3)
    h_guess = np.full(4, 1.0 / 3)
    h_know[0] = h_guess[0] = 1.0
    prior = np.full(K, 1.0 / K)
    q = None
    if warm is not None:  # the first E-step starts from the warm parameters
        for j, lid in enumerate(labeler_ids):
            k = warm._labeler_index.get(int(lid))
            if k is not None:
                alpha[j], guess[j] = warm.alpha[k], warm.guess[k]
        for i, iid in enumerate(item_ids):
            k = warm._item_index.get(int(iid))
            if k is not None:
                beta[i] = warm.beta[k]
        h_know, h_guess, prior = warm.h_know.copy(), warm.h_guess.copy(), warm.prior.copy()
    else:
        # start from smoothed vote shares
        q = np.zeros((n_items, K))
        np.add.at(q, it, onehot)
        q = (q + 0.1) / (q + 0.1).sum(axis=1, keepdims=True)

    prev_ll = -np.inf
    converged = False
    iteration = 0
    ll = -np.inf
    for iteration in range(1, max_iter + 1):
        if q is None or iteration > 1:
            q, ll = _e_step(it, lb, r, rd, s, has_s, alpha, beta, guess, h_know, h_guess, prior, n_items)
        # M-step
        c = _sigmoid(alpha[lb] - beta[it])
        qz = q[it]  # labels x K
        gr = guess[lb, rd]
        hk = np.where(has_s, h_know[s], 1.0)
        hg = np.where(has_s, h_guess[s], 1.0)
        # E[knew] = sum_z q(z) P(knew | r, s, z); only z == r can be "known"
        knew = qz[np.arange(len(r)), r] * (c * hk) / np.maximum(c * hk + (1 - c) * gr * hg, _EPS)
        knew = np.clip(knew, 0.0, 1.0)
        guessed = 1.0 - knew
        prior = (q.sum(axis=0) + 1.0) / (n_items + K)
        gcount = np.zeros((n_lab, K))
        np.add.at(gcount, lb, guessed[:, None] * onehot_d)
        guess = (gcount + 1.0) / (gcount.sum(axis=1, keepdims=True) + K)
        if has_s.any():
            hk_c = np.bincount(s[has_s], weights=knew[has_s], minlength=4)[1:] + 1.0
            hg_c = np.bincount(s[has_s], weights=guessed[has_s], minlength=4)[1:] + 1.0
            h_know = np.concatenate([[1.0], hk_c / hk_c.sum()])
            h_guess = np.concatenate([[1.0], hg_c / hg_c.sum()])
        for _ in range(3):
            c = _sigmoid(alpha[lb] - beta[it])
            resid = knew - c
            w = c * (1 - c)
            g_a = (
                np.bincount(lb, weights=resid, minlength=n_lab)
                - (alpha - ALPHA_PRIOR[0]) / ALPHA_PRIOR[1] ** 2
            )
            h_a = np.bincount(lb, weights=w, minlength=n_lab) + 1.0 / ALPHA_PRIOR[1] ** 2
            alpha = alpha + g_a / h_a
            if item_difficulty:
                c = _sigmoid(alpha[lb] - beta[it])
                resid = knew - c
                w = c * (1 - c)
                g_b = -np.bincount(it, weights=resid, minlength=n_items) - beta / BETA_PRIOR_SD**2
                h_b = np.bincount(it, weights=w, minlength=n_items) + 1.0 / BETA_PRIOR_SD**2
                beta = beta + g_b / h_b
        if iteration > 1 and abs(ll - prev_ll) <= tol * max(1.0, abs(ll)):
            converged = True
            break
        prev_ll = ll
    q, ll = _e_step(it, lb, r, rd, s, has_s, alpha, beta, guess, h_know, h_guess, prior, n_items)
    # expected accuracy of each labeler on the items they labeled: P(r == z)
    c = _sigmoid(alpha[lb] - beta[it])
    g_slot = guess[lb].copy()  # the guess distribution in item slots
    g_slot[swapped, A], g_slot[swapped, B] = guess[lb[swapped], B], guess[lb[swapped], A]
    p_correct = c + (1 - c) * (q[it] * g_slot).sum(axis=1)
    counts = np.bincount(lb, minlength=n_lab).astype(float)
    accuracy = np.bincount(lb, weights=p_correct, minlength=n_lab) / np.maximum(counts, 1)
    return ReliabilityResult(
        item_ids=item_ids,
        labeler_ids=labeler_ids,
        posterior=q,
        prior=prior,
        alpha=alpha,
        beta=beta,
        guess=guess,
        h_know=h_know,
        h_guess=h_guess,
        accuracy=accuracy,
        label_counts=counts.astype(int),
        iterations=iteration,
        converged=converged,
        log_likelihood=float(ll),
        threshold=threshold,
    )


def _e_step(it, lb, r, rd, s, has_s, alpha, beta, guess, h_know, h_guess, prior, n_items):
    c = _sigmoid(alpha[lb] - beta[it])
    hk = np.where(has_s, h_know[s], 1.0)
    hg = np.where(has_s, h_guess[s], 1.0)
    base = (1 - c) * guess[lb, rd] * hg  # P(r, s | z) when z != r
    hit = base + c * hk  # when z == r
    logl = np.repeat(np.log(np.maximum(base, _EPS))[:, None], K, axis=1)
    logl[np.arange(len(r)), r] = np.log(np.maximum(hit, _EPS))
    acc = np.zeros((n_items, K))
    for k in range(K):
        acc[:, k] = np.bincount(it, weights=logl[:, k], minlength=n_items)
    acc += np.log(prior)[None, :]
    m = acc.max(axis=1, keepdims=True)
    p = np.exp(acc - m)
    z = p.sum(axis=1, keepdims=True)
    ll = float((m[:, 0] + np.log(z[:, 0])).sum())
    return p / z, ll


def majority_vote(labels: Labels, weights: dict | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(item ids, winning class per item): plain (or weighted) plurality; exact ties are broken by a
    fixed hash of the item id. ``weights``: per labeler id (dict) or per label (array)."""
    item_ids, it = _index(labels.item)
    if weights is None:
        w = np.ones(len(labels))
    elif isinstance(weights, dict):
        w = np.array([weights.get(int(x), 0.0) for x in labels.labeler])
    else:
        w = np.asarray(weights, dtype=float)
    tally = np.zeros((len(item_ids), K))
    np.add.at(tally, (it, labels.response), w)
    return item_ids, _argmax_fair(tally, item_ids)


def _argmax_fair(tally: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
    """Argmax with exact ties broken by a hash of (item id, class), not always toward class 0."""
    salt = (item_ids[:, None] * 2654435761 + np.arange(K)[None, :] * 40503) % 1000003
    return (tally + salt * 1e-12).argmax(axis=1)


def weighted_vote(labels: Labels, result: ReliabilityResult) -> tuple[np.ndarray, np.ndarray]:
    """Majority with each labeler's vote weighted by the model's weight (unknown labelers: 0)."""
    return majority_vote(
        labels, {int(lid): float(w) for lid, w in zip(result.labeler_ids, result.weights, strict=True)}
    )
