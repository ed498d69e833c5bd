#!/usr/bin/env python
"""Reliability model against majority vote on synthetic campaigns with known truth.

    python bench/reliability.py                    # default: 2000 items, 14 labelers, 5 seeds
    python bench/reliability.py --items 4000 --seeds 10

A campaign has items with a true answer (A 45 %, B 45 %, tie 6 %, both bad 4 %), 60 % easy and 40 %
hard, and a pool of labelers: good ones (right on 90 % of easy and 65 % of hard items; their errors
flip the preference or call a tie), two spammers (uniform at random), a left-biased labeler (answers
A 70 % of the time whatever the item, otherwise like a good one) and a tie-happy labeler (says tie 45 %
of the time, otherwise like a good one). Each item gets ``k`` distinct labelers at random. The truth
generator is deliberately not the model's own generative story.

Printed: accuracy of the recovered class (all four classes) for plain majority, majority weighted
by the model's labeler weights, and the model's MAP class, for k = 1, 2, 3, 5, 7 labels per item,
averaged over seeds; then the model's ranking of labelers (worst first) for k = 3 on the first seed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from annotate.reliability import BOTH_BAD, TIE, A, B, Labels, fit, majority_vote, weighted_vote  # noqa: E402

GOOD, SPAMMER, LEFT_BIASED, TIE_HAPPY = "good", "spammer", "left_biased", "tie_happy"


def planted_pool(n_good: int = 10) -> list[str]:
    return [GOOD] * n_good + [SPAMMER, SPAMMER, LEFT_BIASED, TIE_HAPPY]


def planted_campaign(
    *, n_items: int, k: int, seed: int, pool: list[str] | None = None
) -> tuple[Labels, np.ndarray, list[str]]:
    """(labels, true class per item id 0..n-1, kind per labeler id 0..m-1)."""
    pool = pool or planted_pool()
    rng = np.random.default_rng(seed)
    truth = rng.choice(4, size=n_items, p=[0.45, 0.45, 0.06, 0.04])
    hard = rng.random(n_items) < 0.4
    items, labelers, responses, strengths = [], [], [], []
    for i in range(n_items):
        for j in rng.choice(len(pool), size=min(k, len(pool)), replace=False):
            kind = pool[j]
            z = truth[i]
            if kind == SPAMMER:
                resp = int(rng.integers(4))
            elif kind == LEFT_BIASED and rng.random() < 0.7:
                resp = A
            elif kind == TIE_HAPPY and rng.random() < 0.45:
                resp = TIE
            else:
                p_right = 0.65 if hard[i] else 0.9
                if rng.random() < p_right:
                    resp = int(z)
                elif z in (A, B):
                    resp = (B if z == A else A) if rng.random() < 0.75 else TIE
                else:
                    resp = int(rng.choice([A, B, TIE if z == BOTH_BAD else BOTH_BAD]))
            strength = 0
            if resp in (A, B):
                right = resp == z
                strength = int(rng.choice([1, 2, 3], p=[0.2, 0.35, 0.45] if right else [0.5, 0.35, 0.15]))
            items.append(i)
            labelers.append(int(j))
            responses.append(resp)
            strengths.append(strength)
    return Labels.from_lists(items, labelers, responses, strengths), truth, pool


def evaluate(labels: Labels, truth: np.ndarray) -> dict:
    res = fit(labels)
    ids, maj = majority_vote(labels)
    _, wmaj = weighted_vote(labels, res)
    model = res.map_class
    t = truth[ids]
    return {
        "majority": float((maj == t).mean()),
        "weighted": float((wmaj == t).mean()),
        "model": float((model == t).mean()),
        "result": res,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args(argv)
    ks = (1, 2, 3, 5, 7)
    print(f"Synthetic campaigns: {args.items} items, pool {planted_pool()}, {args.seeds} seeds")
    print(f"{'labels/item':>11} | {'majority':>8} | {'weighted':>8} | {'model':>8} | {'fit s':>6}")
    print("-" * 54)
    for k in ks:
        acc = {"majority": [], "weighted": [], "model": []}
        secs = []
        for seed in range(args.seeds):
            labels, truth, _ = planted_campaign(n_items=args.items, k=k, seed=seed)
            t0 = time.perf_counter()
            out = evaluate(labels, truth)
            secs.append(time.perf_counter() - t0)
            for key in acc:
                acc[key].append(out[key])
        print(
            f"{k:>11} | {np.mean(acc['majority']):8.4f} | {np.mean(acc['weighted']):8.4f} | "
            f"{np.mean(acc['model']):8.4f} | {np.mean(secs):6.3f}"
        )
    labels, truth, pool = planted_campaign(n_items=args.items, k=3, seed=0)
    res = fit(labels)
    print("\nLabeler estimates, k=3, seed 0 (worst first):")
    print(
        f"{'id':>3} {'planted':>12} {'accuracy':>8} {'pos.bias':>8} {'tie prop':>8} {'weight':>7} {'flag':>5}"
    )
    for row in res.labeler_estimates():
        print(
            f"{row['labeler_id']:>3} {pool[row['labeler_id']]:>12} {row['accuracy']:8.3f} "
            f"{row['position_bias']:8.3f} {row['tie_propensity']:8.3f} {row['weight']:7.3f} "
            f"{'yes' if row['flagged'] else '':>5}"
        )
    # incremental update: fit on 80 % of the labels, then warm-start on all
    n = len(labels)
    cut = int(n * 0.8)
    part = Labels(labels.item[:cut], labels.labeler[:cut], labels.response[:cut], labels.strength[:cut])
    first = fit(part)
    t0 = time.perf_counter()
    warm = fit(labels, warm=first)
    t_warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    cold = fit(labels)
    t_cold = time.perf_counter() - t0
    print(
        f"\nIncremental update (80 % -> 100 % of labels): warm {warm.iterations} iterations {t_warm:.3f} s, "
        f"cold {cold.iterations} iterations {t_cold:.3f} s; MAP classes equal on "
        f"{(warm.map_class == cold.map_class).mean():.4f} of items"
    )


if __name__ == "__main__":
    main()
