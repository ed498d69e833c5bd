#!/usr/bin/env python
"""Time of the leaderboard page's computation (``annotate.leaderboard.leaderboard``: Davidson fit,
bootstrap, robustness line) on synthetic votes between 20 models, with the bootstrap rounds the
page uses at that size (``annotate.selectors_leaderboard.bootstrap_rounds_for``) and with 100.

    python bench/leaderboard.py [--votes 2000 20000 100000] [--models 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--votes", type=int, nargs="+", default=[2000, 20_000, 100_000])
    ap.add_argument("--models", type=int, default=20)
    args = ap.parse_args(argv)
    import django

    django.setup()
    from annotate.leaderboard import Votes, leaderboard
    from annotate.selectors_leaderboard import bootstrap_rounds_for

    rng = np.random.default_rng(0)
    theta = rng.normal(0, 1, args.models)
    print(f"{'votes':>8} | {'rounds':>6} | {'seconds':>7} | {'100 rounds':>10}")
    for n in args.votes:
        a = rng.integers(0, args.models, n)
        b = (a + rng.integers(1, args.models, n)) % args.models
        d = theta[a] - theta[b]
        p = np.stack([np.exp(d / 2), np.exp(-d / 2), np.full(n, 0.5), np.full(n, 0.25)], axis=1)
        p /= p.sum(axis=1, keepdims=True)
        outcome = (rng.random(n)[:, None] > p.cumsum(axis=1)).sum(axis=1).clip(0, 3)
        votes = Votes.build(a, b, outcome, n_models=args.models)
        rounds = bootstrap_rounds_for(n)
        t0 = time.perf_counter()
        leaderboard(votes, bootstrap_rounds=rounds)
        auto = time.perf_counter() - t0
        t0 = time.perf_counter()
        leaderboard(votes, bootstrap_rounds=100)
        full = time.perf_counter() - t0
        print(f"{n:>8} | {rounds:>6} | {auto:7.1f} | {full:10.1f}", flush=True)


if __name__ == "__main__":
    main()
