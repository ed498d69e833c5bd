"""Style control when style and model are confounded (found by a probe of the leaderboard).

Two models, ten votes: model 1's answer is always the long one with headers, lists and bold, and it
wins every vote, five from slot A and five from slot B. Without a prior on the style coefficients
they took the whole difference: both models were rated exactly 1000.0, the tie was broken by index
so model 0 (no win in ten) was listed first, and the robustness line said no removal of votes
changed the top rank. With the same weak prior as the strengths, the data's difference is shared
between model and style: model 1, which won every vote, stays first."""

from __future__ import annotations

import numpy as np

from annotate.leaderboard import (
    A_WINS,
    B_WINS,
    Votes,
    fit_davidson,
    leaderboard,
    style_covariates,
    style_features,
)

SHORT = "Yes."
LONG = "# Answer\n\n" + "\n".join(f"- **point {i}**: " + "detail " * 20 for i in range(6))


def confounded_votes() -> Votes:
    a, b, outcome, fa, fb = [], [], [], [], []
    for i in range(10):
        if i % 2:  # model 1 in slot A
            a.append(1), b.append(0), outcome.append(A_WINS)
            fa.append(style_features(LONG)), fb.append(style_features(SHORT))
        else:  # model 1 in slot B
            a.append(0), b.append(1), outcome.append(B_WINS)
            fa.append(style_features(SHORT)), fb.append(style_features(LONG))
    x = style_covariates(np.array(fa, float), np.array(fb, float))
    return Votes.build(np.array(a), np.array(b), np.array(outcome), 2, covariates=x)


def test_the_model_that_won_every_vote_stays_first_under_style_control():
    votes = confounded_votes()
    fit = fit_davidson(votes)
    assert fit.ratings[1] > fit.ratings[0] + 1.0  # not a tie at 1000.0 / 1000.0
    board = leaderboard(votes, ["model-0", "model-1"], bootstrap_rounds=20)
    first = board.rows()[0]
    assert first["model"] == "model-1" and first["rank"] == 1
    # style still takes part of the difference: smaller than without style control
    plain = fit_davidson(Votes.build(votes.a, votes.b, votes.outcome, 2))
    assert 0 < fit.ratings[1] - fit.ratings[0] < plain.ratings[1] - plain.ratings[0]
