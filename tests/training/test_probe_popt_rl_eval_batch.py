"""Probe: ``per_device_eval_batch_size`` of RLOO/GRPO runs had no effect.

The RL runner scored completions (in training and on the held-out prompts) with
``score_sequences``' own batches of 16 whatever the option said, and TRL reads the option only when it
evaluates, which an RL run never asks it to: a run with ``per_device_eval_batch_size`` 1 ran the
reward model on 3 held-out sequences at once. As in PPO (whose rollout forwards run in micro-batches of it),
the reward model now reads at most ``per_device_eval_batch_size`` sequences per forward."""

from __future__ import annotations

import pytest

from tests.training.conftest import RL_ONE_STEP, preference_file, runner_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@pytest.mark.parametrize("kind", ["rloo", "grpo"])
def test_the_reward_model_reads_per_device_eval_batch_size_sequences_at_a_time(
    kind, tiny, tiny_reward_model, tmp_path, monkeypatch
):
    from training.runners import rl

    batches: list[int] = []
    load = rl.load_reward_model

    def spied(*args, **kwargs):
        model = load(*args, **kwargs)
        model.register_forward_pre_hook(
            lambda _m, args, kwargs: batches.append(kwargs["input_ids"].shape[0]), with_kwargs=True
        )
        return model

    monkeypatch.setattr(rl, "load_reward_model", spied)
    data = preference_file(tmp_path / "pairs.jsonl", 12, seed=1)
    scoring = {"reward_model": tiny_reward_model, "max_completion_length": 4, "per_device_eval_batch_size": 1}
    cfg = runner_config(kind, tiny, data, tmp_path / kind, eval_fraction=0.25, **RL_ONE_STEP, **scoring)
    rl.run(kind, cfg)
    assert len(batches) >= 2 + 2 * 3  # a training round of 2 completions, 3 held-out prompts twice
    assert max(batches) == 1
