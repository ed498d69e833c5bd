"""PPO's weight decay spares biases and norms, as the TRL runners' (transformers') does.

The defect: PPO built one AdamW group per learning rate with ``weight_decay`` on every tensor, so
a run with weight decay shrank every bias, every RMSNorm/LayerNorm scale and the value head's bias
towards 0 each step, while the reward, DPO, RLOO and GRPO runs (transformers' Trainer) exclude
biases and norms. A norm scale pulled towards 0 scales the whole residual stream down: not what
weight decay is for. Now each learning-rate group is split in two, the biases and norms without
decay (transformers' own rule, ``Trainer.get_decay_parameter_names``)."""

from __future__ import annotations

import pytest

from tests.training.conftest import PPO_SMALL, preference_file, runner_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def test_biases_and_norms_are_not_decayed(tiny, tiny_reward_model, tmp_path, monkeypatch):
    import torch

    from training.runners import ppo

    seen, built = [], []

    class Recording(torch.optim.AdamW):
        def __init__(self, params, **kwargs):
            super().__init__(params, **kwargs)
            seen.append(self)

    build = ppo.PolicyWithValueHead.build

    def build_and_keep(policy, value_model=None):
        built.append(build(policy, value_model))
        return built[-1]

    monkeypatch.setattr(torch.optim, "AdamW", Recording)
    monkeypatch.setattr(ppo.PolicyWithValueHead, "build", staticmethod(build_and_keep))
    data = preference_file(tmp_path / "pairs.jsonl", 4, seed=0)
    cfg = runner_config(
        "ppo",
        tiny,
        data,
        tmp_path / "ppo",
        **{
            **PPO_SMALL,
            "reward_model": tiny_reward_model,
            "weight_decay": 0.1,
            "max_steps": 1,
            "eval_fraction": 0,
        },
    )
    ppo.run(cfg)
    (optimizer,), (model,) = seen, built
    names = {id(p): n for n, p in model.named_parameters()}
    decay = {
        names[id(p)]: (g["weight_decay"], g["initial_lr"])  # the rate before the schedule stepped it
        for g in optimizer.param_groups
        for p in g["params"]
    }
    assert set(decay) == set(names.values())  # every tensor is stepped
    spared = {n for n, (wd, _) in decay.items() if wd == 0}
    decayed = {n for n, (wd, _) in decay.items() if wd == 0.1}
    assert spared | decayed == set(decay)
    assert all("bias" in n or "norm" in n for n in spared), sorted(spared)
    assert not any("bias" in n or "norm" in n for n in decayed), sorted(decayed)
    assert any(n.endswith("norm.weight") for n in spared)  # the RMSNorm scales are spared
    # each tensor keeps its learning rate: the policy's, or the value head's own
    assert {lr for n, (_, lr) in decay.items() if n.startswith("policy.")} == {cfg.learning_rate}
    assert {lr for n, (_, lr) in decay.items() if not n.startswith("policy.")} == {cfg.value_learning_rate}


def test_a_checkpoint_of_the_old_optimiser_layout_is_refused_by_name(tiny, tmp_path, monkeypatch):
    """A PPO checkpoint written before the split (one group per learning rate) cannot restore the
    split optimiser: refused with what to do, not PyTorch's 'loaded state dict contains a parameter
    group that doesn't match the size of optimizer's group' from deep in accelerate."""
    from tests.training.conftest import ppo_kept_checkpoint
    from training.runners import ppo
    from training.runners.models import CheckpointMismatch

    def one_group_per_rate(model, cfg):
        policy = [p for n, p in model.named_parameters() if n.startswith("policy.")]
        value = [p for n, p in model.named_parameters() if not n.startswith("policy.")]
        return [
            {"params": policy, "lr": cfg.learning_rate, "weight_decay": cfg.weight_decay},
            {"params": value, "lr": cfg.value_learning_rate, "weight_decay": cfg.weight_decay},
        ]

    with monkeypatch.context() as old:
        old.setattr(ppo, "optimiser_groups", one_group_per_rate)
        data, common, folder = ppo_kept_checkpoint(tiny, tmp_path, monkeypatch)
    cfg = runner_config("ppo", tiny, data, tmp_path / "then", **common, resume_from=str(folder))
    with pytest.raises(CheckpointMismatch, match="optimiser"):
        ppo.run(cfg)
    assert not (tmp_path / "then").exists()
