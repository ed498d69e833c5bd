"""Probe: PPO's ``top_k`` and ``top_p`` made every rollout off-policy.

PPO's log-probs (the rollout's, each update's probability ratio, the per-token KL to the reference)
are those of softmax(logits / temperature) over the whole vocabulary (``ppo._response_stats``), which
the module promises is "the distribution that really sampled". With ``top_k`` > 0 or ``top_p`` < 1
``generate`` samples from the truncated distribution instead: with ``top_k`` 1 each token is sampled
with certainty (log-prob 0), yet the rollout recorded a mean log-prob of -5.54 per token on the tiny
model. The ratio, the clipping and the KL penalty were computed for a distribution the responses were
not drawn from. The options are now refused unless left as they are (0 and 1): ``temperature``
shapes the sampling."""

from __future__ import annotations

import pytest

from training.runners.configs import ConfigError, config_for, documented_defaults

BASE = {"base_model": "m", "output_dir": "o", "reward_model": "r"}


@pytest.mark.parametrize(("values", "name"), [({"top_k": 1}, "top_k"), ({"top_k": 50}, "top_k"),
                                              ({"top_p": 0.9}, "top_p")])  # fmt: skip
def test_a_truncated_ppo_sampler_is_refused(values, name):
    with pytest.raises(ConfigError, match=rf"^{name} .*off-policy"):
        config_for("ppo", {**BASE, **values})


def test_the_defaults_are_accepted():
    pasted = {k: v for k, v in documented_defaults("ppo").items() if v not in ("", None)}
    cfg = config_for("ppo", {**pasted, **BASE})
    assert (cfg.top_k, cfg.top_p) == (0, 1.0)


@pytest.mark.parametrize(
    ("values", "message"), [({"top_k": -1}, "top_k must be >= 0"), ({"top_p": 0}, "top_p in")]
)
def test_out_of_range_values_are_still_refused_as_before(values, message):
    with pytest.raises(ConfigError, match=message):
        config_for("ppo", {**BASE, **values})
