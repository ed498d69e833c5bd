"""Rows held out beyond what is evaluated are trained on.

The defect: ``split_eval`` held out ``eval_fraction`` of the rows and then evaluated at most
``limit`` of them (``max_eval_rows``; RLOO/GRPO at most 64 prompts): the rest were neither
evaluated nor trained on. 20 pairs with eval_fraction 0.25 and max_eval_rows 2 trained 15 and
evaluated 2, and 3 pairs went nowhere; an RL run on 10,000 prompts held out 1,000 and evaluated 64,
so 936 prompts were lost to training. Now at most ``limit`` rows are held out: every other row
trains."""

from __future__ import annotations

import pytest

from training.runners.data import split_eval


def _rows(n: int) -> list[dict]:
    return [{"prompt": f"q{i}", "chosen": "a", "rejected": "b"} for i in range(n)]


@pytest.mark.parametrize(("n", "fraction", "limit"), [(20, 0.25, 2), (10_000, 0.1, 64), (20, 0.25, 100)])
def test_every_row_is_trained_or_evaluated(n, fraction, limit):
    rows = _rows(n)
    train, held = split_eval(rows, eval_rows=None, fraction=fraction, seed=3, limit=limit)
    assert len(held) == min(limit, max(1, round(n * fraction)))
    assert len(train) + len(held) == n
    assert {r["prompt"] for r in train}.isdisjoint(r["prompt"] for r in held)


def test_the_held_out_rows_are_the_same_draw_whatever_the_limit():
    """A smaller limit keeps the first rows of the same seeded draw (the held-out set of a run
    with a larger limit contains it), so runs with different limits stay comparable."""
    rows = _rows(200)
    _, few = split_eval(rows, eval_rows=None, fraction=0.2, seed=1, limit=5)
    _, many = split_eval(rows, eval_rows=None, fraction=0.2, seed=1, limit=40)
    assert few == many[:5]
