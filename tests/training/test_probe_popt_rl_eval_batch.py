"""Probe: ``per_device_eval_batch_size`` of RLOO/GRPO runs had no effect.

The RL runner scored completions (in training and on the held-out prompts) with
``score_sequences``' own batches of 16 whatever the option said, and TRL reads the option only when it
evaluates, which an RL run never asks it to: a run with ``per_device_eval_batch_size`` 1 ran the
reward model on 3 held-out sequences at once. As in PPO (whose rollout forwards run in micro-batches of it),
the reward model now reads at most ``per_device_eval_batch_size`` sequences per forward."""

from __future__ import annotations

import pytest

from tests.training.conftest import preference_file, runner_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def reward_model(tiny, tmp_path_factory):
    from training.runners import reward

    work = tmp_path_factory.mktemp("rm")
    data = preference_file(work / "pairs.jsonl", 8, seed=0)
    return reward.run(runner_config("reward", tiny, data, work / "rm", max_steps=1, eval_fraction=0))[
        "output_dir"
    ]


@pytest.mark.parametrize("kind", ["rloo", "grpo"])
def test_the_reward_model_reads_per_device_eval_batch_size_sequences_at_a_time(
    kind, tiny, reward_model, tmp_path, monkeypatch
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
    cfg = runner_config(
        kind,
        tiny,
        data,
        tmp_path / kind,
        reward_model=reward_model,
        max_steps=1,
        eval_fraction=0.25,
        num_generations=2,
        max_completion_length=4,
        per_device_eval_batch_size=1,
    )
    rl.run(kind, cfg)
    assert len(batches) >= 2 + 2 * 3  # a training round of 2 completions, 3 held-out prompts twice
    assert max(batches) == 1
