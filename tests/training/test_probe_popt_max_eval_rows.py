"""Probe: ``max_eval_rows`` 0 (PPO: ``eval_prompts`` 0) dropped training data without a word.

With no held-out file, ``eval_fraction`` of the training file is held out, and at most
``max_eval_rows`` of those rows (PPO: ``eval_prompts``) are evaluated. Set to 0, the held-out rows
were neither evaluated nor trained on: a reward run on 20 pairs with ``eval_fraction`` 0.25 and
``max_eval_rows`` 0 trained on 15 pairs, reported no held-out figure and said nothing about the 5
others. A bound of 0 now holds nothing out (``data.split_eval``): no evaluation, every row trained."""

from __future__ import annotations

import pytest

from tests.training.conftest import preference_file, runner_config
from training.runners.data import load_prompt_splits, split_eval

pytestmark = [pytest.mark.usefixtures("one_thread")]


def test_a_bound_of_zero_holds_nothing_out():
    rows = [{"i": i} for i in range(20)]
    assert split_eval(rows, eval_rows=None, fraction=0.25, seed=0, limit=0) == (rows, [])
    train, held = split_eval(rows, eval_rows=None, fraction=0.25, seed=0, limit=2)
    assert (len(train), len(held)) == (18, 2)  # no more held out than evaluated (test_held_out_cap_...)
    assert split_eval(rows, eval_rows=rows[:3], fraction=0.25, seed=0, limit=0) == (rows, [])


def test_ppo_with_no_held_out_prompts_trains_on_every_prompt(tmp_path):
    data = preference_file(tmp_path / "pairs.jsonl", 20, seed=1)
    cfg = runner_config(
        "ppo", "m", data, tmp_path / "out", reward_model="r", eval_fraction=0.25, eval_prompts=0
    )
    train, held, _ = load_prompt_splits(cfg, limit=min(cfg.eval_prompts, cfg.max_eval_rows))
    assert (len(train), held) == (20, [])


@pytest.mark.slow
def test_a_reward_run_without_evaluation_trains_on_every_pair(tiny, tmp_path):
    from training.runners import reward

    data = preference_file(tmp_path / "pairs.jsonl", 20, seed=1)
    cfg = runner_config(
        "reward", tiny, data, tmp_path / "rm", max_steps=1, eval_fraction=0.25, max_eval_rows=0
    )
    done = reward.run(cfg)
    assert done["train_pairs"] == 20
    assert not any(k.startswith("eval_") for k in done)
