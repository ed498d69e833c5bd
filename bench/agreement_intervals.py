#!/usr/bin/env python
"""Bootstrap intervals of the report's agreement coefficients: seconds for 1,000 seeded resamples
on synthetic long-format data (no database), per coefficient.

    python bench/agreement_intervals.py                       # 100k tasks x 3 labels, 20 labelers
    python bench/agreement_intervals.py --tasks 20000 --labels 5 --labelers 50
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from annotate import agreement as ag

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--labels", type=int, default=3, help="labels per task")
    parser.add_argument("--labelers", type=int, default=20)
    parser.add_argument("--k", type=int, default=4, help="categories")
    parser.add_argument("--resamples", type=int, default=ag.CI_RESAMPLES)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    n, m, k = args.tasks, args.labels, args.k
    tix = np.repeat(np.arange(n), m)
    lix = np.argsort(rng.random((n, args.labelers)), axis=1)[:, :m].ravel()
    truth = np.repeat(rng.integers(0, k, n), m)
    code = np.where(rng.random(n * m) < 0.7, truth, rng.integers(0, k, n * m))
    counts = np.bincount(tix * k + code, minlength=n * k).reshape(n, k)
    print(
        f"{n:,} tasks x {m} labels = {n * m:,} annotations, {args.labelers} labelers, {args.resamples} resamples"
    )

    t = time.perf_counter()
    out = ag.nominal_intervals(counts, fleiss_raters=m, resamples=args.resamples)
    print(f"percent + alpha + Fleiss intervals: {time.perf_counter() - t:.3f} s  {out}")
    t = time.perf_counter()
    cohen = ag.cohen_mean_interval(tix, lix, code, k, args.labelers, min_shared=5, resamples=args.resamples)
    print(f"mean Cohen's kappa interval:       {time.perf_counter() - t:.3f} s  {cohen}")

    # a ranking project of the same size: K=4 responses ranked per label
    ranks = (
        np.argsort(
            np.argsort(rng.random((n * m, 4)) + np.repeat(rng.random((n, 4)), m, axis=0), axis=1), axis=1
        )
        + 1.0
    )
    t = time.perf_counter()
    ordinal = ag.ordinal_alpha_interval(tix, ranks, resamples=args.resamples)
    print(f"ordinal alpha interval:            {time.perf_counter() - t:.3f} s  {ordinal}")
    t = time.perf_counter()
    w = ag.kendall_w_by_task(tix, ranks)
    mean = ag.mean_interval(w, resamples=args.resamples)
    print(f"Kendall's W (per task + interval): {time.perf_counter() - t:.3f} s  {mean}")


if __name__ == "__main__":
    main()
