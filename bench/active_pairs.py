#!/usr/bin/env python
"""Active pair selection against uniform selection on a synthetic arena.

    python bench/active_pairs.py                 # 20 models, 8 seeds, batches of 10 votes
    python bench/active_pairs.py --models 20 --seeds 16 --batch 5

Each seed draws true Bradley-Terry strengths for the models (normal, sd 1 on the logit scale) and
simulates votes: a vote on (i, j) is a win for i with probability sigmoid(theta_i - theta_j).
After every batch of votes the strengths are refitted (``annotate.active_pairs.fit_bt``) and the
Kendall tau between fitted and true strengths is measured. *Uniform* draws each pair at random;
*active* picks the batch with ``select_pairs`` (greedy expected drop of the summed misordering
probability, with rank-one covariance updates inside the batch). Printed: the votes needed until tau first reaches the target (0.9), per seed and the
median, and the mean tau at a few vote budgets.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from annotate.active_pairs import fit_bt, select_pairs  # noqa: E402


def run(
    *, n_models: int, seed: int, policy: str, batch: int, max_votes: int, target: float, checkpoints
) -> tuple[int | None, dict]:
    rng = np.random.default_rng(seed)
    theta = rng.normal(0.0, 1.0, n_models)
    pairs = np.array(list(itertools.combinations(range(n_models), 2)))
    sim = np.random.default_rng(seed + 10_000 if policy == "uniform" else seed + 20_000)
    wins = np.zeros((n_models, n_models))
    votes = 0
    reached = None
    taus = {}
    model = fit_bt(wins)
    while votes < max_votes:
        if policy == "uniform":
            chosen = pairs[sim.integers(len(pairs), size=batch)]
        else:
            chosen = pairs[select_pairs(model, pairs, batch, rng=sim)]
        i, j = chosen[:, 0], chosen[:, 1]
        p = 1.0 / (1.0 + np.exp(-(theta[i] - theta[j])))
        i_wins = sim.random(len(chosen)) < p
        np.add.at(wins, (np.where(i_wins, i, j), np.where(i_wins, j, i)), 1.0)
        votes += len(chosen)
        model = fit_bt(wins)
        tau = kendalltau(model.theta, theta).statistic
        if reached is None and tau >= target:
            reached = votes
        for c in checkpoints:
            if votes == c:
                taus[c] = tau
        if reached is not None and votes >= max(checkpoints):
            break
    return reached, taus


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--target", type=float, default=0.9)
    ap.add_argument("--max-votes", type=int, default=30_000)
    args = ap.parse_args(argv)
    checkpoints = [c for c in (500, 1000, 2000, 4000) if c % args.batch == 0]
    print(
        f"Synthetic arena: {args.models} models, strengths ~ N(0, 1), batches of {args.batch} votes, "
        f"target Kendall tau >= {args.target}"
    )
    print(f"{'seed':>4} | {'uniform votes':>13} | {'active votes':>12}")
    print("-" * 36)
    res = {"uniform": [], "active": []}
    taus = {"uniform": [], "active": []}
    for seed in range(args.seeds):
        row = []
        for policy in ("uniform", "active"):
            reached, t = run(
                n_models=args.models,
                seed=seed,
                policy=policy,
                batch=args.batch,
                max_votes=args.max_votes,
                target=args.target,
                checkpoints=checkpoints,
            )
            res[policy].append(reached if reached is not None else np.inf)
            taus[policy].append(t)
            row.append("never" if reached is None else str(reached))
        print(f"{seed:>4} | {row[0]:>13} | {row[1]:>12}")
    med_u, med_a = np.median(res["uniform"]), np.median(res["active"])
    print("-" * 36)
    print(f"{'median':>4} | {med_u:>13.0f} | {med_a:>12.0f}   (active/uniform = {med_a / med_u:.2f})")
    print("\nMean Kendall tau at a vote budget:")
    print(f"{'votes':>6} | {'uniform':>7} | {'active':>7}")
    for c in checkpoints:
        u = [t[c] for t in taus["uniform"] if c in t]
        a = [t[c] for t in taus["active"] if c in t]
        if u and a:
            print(f"{c:>6} | {np.mean(u):7.3f} | {np.mean(a):7.3f}")


if __name__ == "__main__":
    main()
