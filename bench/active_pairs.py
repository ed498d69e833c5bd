#!/usr/bin/env python
"""Active pair selection against uniform selection on a synthetic arena.

    python bench/active_pairs.py                          # 20 models, 8 seeds x 3 vote streams
    python bench/active_pairs.py --seeds 16 --reps 5 --policies uniform,greedy,active

Each seed draws true Bradley-Terry strengths for the models (normal, sd 1 on the logit scale);
a vote on (i, j) is a win for i with probability sigmoid(theta_i - theta_j). After every batch of
votes the strengths are refitted (``annotate.active_pairs.fit_bt``) and the Kendall tau between
fitted and true strengths is measured. Policies:

* ``uniform``: each pair of the batch drawn at random;
* ``greedy``: ``select_pairs`` (greedy expected drop of the summed misordering probability, with
  rank-one covariance updates inside the batch), no exploration;
* ``active``: the same with a share ``--explore`` (0.1) of uniform picks (what leasing would use).

"Votes needed" is when tau first reaches the target (0.9). That first crossing is a noisy event
(a lucky stream crosses early), so each seed runs ``--reps`` independent vote streams per policy
and the per-seed figure is their median. Printed: votes needed per seed for every policy, the
median and mean over seeds, on how many seeds each policy needed fewer votes than uniform, and the
mean tau at a few vote budgets.
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

POLICY_CODE = {"uniform": 1, "active": 2, "greedy": 3}
DEFAULT_EXPLORE = 0.1


def run(
    *,
    n_models: int,
    seed: int,
    policy: str,
    batch: int,
    max_votes: int,
    target: float,
    checkpoints,
    rep: int = 0,
    explore: float = DEFAULT_EXPLORE,
) -> tuple[int | None, dict]:
    """One vote stream: (votes when tau first reached ``target`` or None, {budget: tau})."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(0.0, 1.0, n_models)
    pairs = np.array(list(itertools.combinations(range(n_models), 2)))
    sim = np.random.default_rng([seed, rep, POLICY_CODE[policy]])
    share = {"uniform": 0.0, "greedy": 0.0, "active": explore}[policy]
    wins = np.zeros((n_models, n_models))
    votes = 0
    reached = None
    taus = {}
    model = fit_bt(wins)
    last = max(checkpoints, default=0)
    while votes < max_votes:
        if policy == "uniform":
            chosen = pairs[sim.integers(len(pairs), size=batch)]
        else:
            chosen = pairs[select_pairs(model, pairs, batch, rng=sim, explore=share)]
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
        if reached is not None and votes >= last:
            break
    return reached, taus


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3, help="vote streams per seed and policy (median)")
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--target", type=float, default=0.9)
    ap.add_argument("--explore", type=float, default=DEFAULT_EXPLORE)
    ap.add_argument("--policies", default="uniform,active", help="from uniform, greedy, active")
    ap.add_argument("--max-votes", type=int, default=30_000)
    args = ap.parse_args(argv)
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    if "uniform" not in policies or any(p not in POLICY_CODE for p in policies):
        ap.error("--policies must include uniform and may add greedy and active")
    checkpoints = [c for c in (500, 1000, 2000) if c % args.batch == 0]
    print(
        f"Synthetic arena: {args.models} models, strengths ~ N(0, 1), batches of {args.batch} votes, "
        f"target Kendall tau >= {args.target}; per seed the median of {args.reps} vote streams; "
        f"active explores {args.explore:.0%} uniformly"
    )
    width = 9 + 14 * len(policies)
    print(f"{'seed':>6} | " + " | ".join(f"{p:>11}" for p in policies))
    print("-" * width)
    needed = {p: [] for p in policies}
    taus = {p: [] for p in policies}
    for seed in range(args.seeds):
        row = []
        for policy in policies:
            per_rep = []
            for rep in range(args.reps):
                reached, t = run(
                    n_models=args.models,
                    seed=seed,
                    policy=policy,
                    batch=args.batch,
                    max_votes=args.max_votes,
                    target=args.target,
                    checkpoints=checkpoints,
                    rep=rep,
                    explore=args.explore,
                )
                per_rep.append(reached if reached is not None else np.inf)
                taus[policy].append(t)
            needed[policy].append(float(np.median(per_rep)))
            row.append(f"{needed[policy][-1]:>11.0f}")
        print(f"{seed:>6} | " + " | ".join(row), flush=True)
    print("-" * width)
    for stat, fn in (("median", np.median), ("mean", np.mean)):
        print(f"{stat:>6} | " + " | ".join(f"{fn(needed[p]):>11.0f}" for p in policies))
    uniform = np.array(needed["uniform"])
    for p in policies:
        if p == "uniform":
            continue
        mine = np.array(needed[p])
        print(
            f"{p}: fewer votes than uniform on {int((mine < uniform).sum())} of {len(mine)} seeds; "
            f"median {np.median(mine) / np.median(uniform):.2f}x, mean {np.mean(mine) / np.mean(uniform):.2f}x, "
            f"worst seed {np.max(mine / uniform):.2f}x uniform"
        )
    print("\nMean Kendall tau at a vote budget:")
    print(f"{'votes':>6} | " + " | ".join(f"{p:>7}" for p in policies))
    for c in checkpoints:
        cells = [
            np.mean([t[c] for t in taus[p] if c in t]) if any(c in t for t in taus[p]) else np.nan
            for p in policies
        ]
        print(f"{c:>6} | " + " | ".join(f"{v:7.3f}" for v in cells))


if __name__ == "__main__":
    main()
