"""An RL run (PPO, RLOO, GRPO) whose held-out file (``--eval-dataset``) gives no prompt trains anyway
and skips evaluation with a note, as reward and DPO runs do since their held-out change.

Before: an empty held-out file failed the whole RL run before training ("No prompts in
test.jsonl."), and so did an HH-RLHF held-out file whose pairs were identical (its prompts were read
through the preference loader, which refuses a file with no usable pair), while the same file only
skipped evaluation in a reward or DPO run. A training file with no prompt is still an error."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.training.conftest import write_jsonl
from training.runners.data import load_prompt_splits
from training.runners.protocol import DataError

TRAIN = [{"prompt": f"Question {i}?", "chosen": "Yes.", "rejected": "No."} for i in range(6)]
HH_SAME = {"chosen": "\n\nHuman: Hi?\n\nAssistant: Yo.", "rejected": "\n\nHuman: Hi?\n\nAssistant: Yo."}


def _cfg(train: str, held: str) -> SimpleNamespace:
    return SimpleNamespace(
        dataset_path=train, eval_dataset_path=held, eval_fraction=0.1, seed=0, max_eval_rows=100
    )


def _held(tmp_path: Path, text: str) -> str:
    path = tmp_path / "test.jsonl"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "the file is empty"),
        ("\n\n", "the file is empty"),
        (json.dumps(HH_SAME) + "\n", "1 with identical"),
    ],
    ids=["empty", "blank-lines", "hh-identical"],
)
def test_held_out_file_without_prompts_skips_evaluation(tmp_path, capsys, text, why):
    train = write_jsonl(tmp_path / "train.jsonl", TRAIN)
    splits = load_prompt_splits(_cfg(train, _held(tmp_path, text)), limit=10)
    train_prompts, eval_prompts, skipped = splits
    assert len(train_prompts) == 6 and eval_prompts == []
    assert (
        skipped.startswith("held-out split: 0 prompts") and why in skipped and "evaluation skipped" in skipped
    )
    assert skipped in capsys.readouterr().err


def test_held_out_prompts_are_used_and_no_note(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", TRAIN)
    held = write_jsonl(
        tmp_path / "test.jsonl", [{"prompt": "T?", "chosen": "A.", "rejected": "B.", "flag": "tie"}]
    )
    assert load_prompt_splits(_cfg(train, held), limit=10) == ([r["prompt"] for r in TRAIN], ["T?"], "")


def test_training_file_without_prompts_is_still_an_error(tmp_path):
    train = _held(tmp_path, "")
    with pytest.raises(DataError, match=r"No prompts in test\.jsonl"):
        load_prompt_splits(_cfg(train, ""), limit=10)


@pytest.fixture(scope="module")
def rl_models(tmp_path_factory):
    from generation.tiny_model import build_tiny_model
    from training.runners import reward
    from training.runners.configs import config_for

    work = tmp_path_factory.mktemp("rlheld")
    base = str(build_tiny_model(work / "base"))
    data = write_jsonl(work / "pairs.jsonl", [{**r, "rejected": "No, sorry."} for r in TRAIN * 2])
    rm = reward.run(
        config_for(
            "reward",
            {"base_model": base, "dataset_path": data, "output_dir": str(work / "rm"), "use_cpu": True,
             "max_steps": 1, "eval_fraction": 0},
        )
    )  # fmt: skip
    return base, rm["output_dir"], data, work


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("kind", ["rloo", "grpo", "ppo"])
def test_rl_run_with_an_empty_held_out_file_trains_and_says_why(rl_models, kind):
    from training.runners import ppo, rl
    from training.runners.configs import config_for

    base, rm, data, work = rl_models
    held = work / f"empty-{kind}.jsonl"
    held.write_text("")
    common = {"base_model": base, "reward_model": rm, "dataset_path": data, "eval_dataset_path": str(held),
              "output_dir": str(work / f"out-{kind}"), "use_cpu": True, "max_steps": 1, "logging_steps": 1}  # fmt: skip
    if kind == "ppo":
        cfg = config_for(kind, {**common, "rollout_batch_size": 4, "mini_batch_size": 4, "ppo_epochs": 1,
                                "max_new_tokens": 4})  # fmt: skip
        metrics = ppo.run(cfg)
    else:
        cfg = config_for(kind, {**common, "num_generations": 2, "per_device_train_batch_size": 2,
                                "max_completion_length": 4})  # fmt: skip
        metrics = rl.run(kind, cfg)
    assert (
        metrics["eval_skipped"]
        == "held-out split: 0 prompts of 0 rows (the file is empty); evaluation skipped"
    )
    assert not [k for k in metrics if k.startswith("eval_") and k != "eval_skipped"]
    assert Path(metrics["output_dir"], "model.safetensors").is_file()
