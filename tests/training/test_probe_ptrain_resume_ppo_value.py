"""Resuming a PPO checkpoint with another ``value_model``.

A PPO checkpoint holds its value function as the run had it: a linear head on the policy trunk
(``value_model`` "") or a separate model ("reward", or a path). Before: the checkpoint record
(``prefhub_checkpoint.json``) left ``value_model`` out, and a run resumed with another one died
in accelerate's ``load_state`` with "Error(s) in loading state_dict for _PolicyValue". Now the
record carries it and such a run is refused before anything is loaded, naming it."""

from __future__ import annotations

import json

import pytest

from tests.training.conftest import ppo_kept_checkpoint, runner_config
from training.runners import ppo
from training.runners.models import CheckpointMismatch

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def test_a_ppo_checkpoint_resumed_with_another_value_model_is_refused(tiny, tmp_path, monkeypatch):
    data, common, folder = ppo_kept_checkpoint(tiny, tmp_path, monkeypatch)
    cfg = runner_config(
        "ppo", tiny, data, tmp_path / "then", **common, value_model="reward", resume_from=str(folder)
    )
    with pytest.raises(CheckpointMismatch, match="value_model '' there, 'reward' here"):
        ppo.run(cfg)
    assert not (tmp_path / "then").exists()
    assert json.loads((folder / "prefhub_checkpoint.json").read_text())["value_model"] == ""
