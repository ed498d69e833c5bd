"""Models with the same rating share a rank on the leaderboard, and their rank ranges say so.

Before: ranks were positions in a list sorted by strength with ties broken by model index, in the
fit and in every bootstrap refit; three models that only ever tied were shown as ranks 1, 2, 3 at
1000.0 each, with rank ranges "1", "2" and "3" (zero width: certainly second), an order made by
the alphabet, not by the votes.
Now: a model's rank is 1 + the number of models rated above it (competition ranking; equal within
``RANK_TIE_ELO``) in the fit and in every refit, so equal models share the rank and the rank range
contains it. Row order is unchanged.
"""

from __future__ import annotations

import numpy as np

from annotate.leaderboard import A_WINS, B_WINS, TIE, Votes, leaderboard


def _rank_check(rows):
    for r in rows:
        assert r["rank_low"] <= r["rank"] <= r["rank_high"], r
        assert r["rating_low"] <= r["rating"] <= r["rating_high"], r
        # independent: 1 + models rated strictly higher (ratings as shown)
        assert r["rank"] == 1 + sum(o["rating"] > r["rating"] for o in rows), r


def test_models_that_only_tie_share_the_first_rank():
    votes = Votes.build([0, 1, 0, 1], [1, 2, 2, 0], [TIE] * 4, n_models=3)
    rows = leaderboard(votes, ["a", "b", "c"], bootstrap_rounds=30).rows()
    assert [r["rating"] for r in rows] == [1000.0] * 3
    assert [r["rank"] for r in rows] == [1, 1, 1]
    assert [(r["rank_low"], r["rank_high"]) for r in rows] == [(1, 1)] * 3
    _rank_check(rows)


def test_two_disconnected_mirror_pairs_share_ranks():
    # a beats b twice, c loses to d twice: nothing ties a to d, so they are rated alike
    votes = Votes.build([0, 0, 2, 2], [1, 1, 3, 3], [A_WINS, A_WINS, B_WINS, B_WINS], n_models=4)
    rows = leaderboard(votes, ["a", "b", "c", "d"], bootstrap_rounds=50, robustness=False).rows()
    by = {r["model"]: r for r in rows}
    assert by["a"]["rating"] == by["d"]["rating"] and by["a"]["rank"] == by["d"]["rank"] == 1
    assert by["b"]["rank"] == by["c"]["rank"] == 3
    _rank_check(rows)


def test_distinct_models_keep_distinct_ranks():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 3, 300)
    b = (a + rng.integers(1, 3, 300)) % 3
    o = np.where(a < b, A_WINS, B_WINS)
    rows = leaderboard(Votes.build(a, b, o, 3), ["x", "y", "z"], bootstrap_rounds=30, robustness=False).rows()
    assert [r["rank"] for r in rows] == [1, 2, 3]
    _rank_check(rows)
