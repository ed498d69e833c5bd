"""DPO trains on each pair's target probability: soft labels (``p_chosen``) and ``label_smoothing``.

The defect: TRL 1.16's ``sigmoid`` loss (the DPO paper's, our default) reads no ``label_smoothing``
(only its ``robust``, ``exo_pair`` and ``aot`` losses do), so a run asking for conservative DPO
trained plain DPO, silently; and an export's soft labels were never trained on. With the sigmoid
loss the runner now trains on the cross-entropy against a per-pair target
``q = (1 - eps) * p + eps * (1 - p)`` (p: the pair's ``p_chosen``, 1 where absent; eps:
``label_smoothing``): ``-(q log s(x) + (1 - q) log s(-x))`` with x the implicit-reward margin. These
tests check that loss against one computed independently (``training.services.evaluation``'s
log-probs), on several model families and with the reference run alongside, precomputed and LoRA.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest

from generation.zoo import build_zoo_model
from tests.training.conftest import preference_file, runner_config, write_jsonl
from training.runners import dpo
from training.runners.configs import ConfigError, config_for
from training.services.evaluation import dpo_reference

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

BETA = 0.5


def _rows(tokenizer, n: int) -> list[dict]:
    """``n`` tokenised pairs (as the runner hands TRL) with targets spread over [0, 1]."""
    from training.runners.data import dpo_ids

    rows = []
    for i in range(n):
        ids = dpo_ids(
            tokenizer,
            {
                "prompt": [{"role": "user", "content": f"Question {i}: is it so?"}],
                "chosen": [{"role": "assistant", "content": "Yes, it is so." + " Indeed." * (i % 3)}],
                "rejected": [{"role": "assistant", "content": "No." + " Never." * (i % 2)}],
            },
        )
        rows.append({**ids, dpo.TARGET_COLUMN: [1.0, 0.9, 0.5, 0.2, 0.0, 0.75][i % 6]})
    return rows


def _expected_loss(policy, reference, tokenizer, rows: list[dict]) -> float:
    now = dpo_reference(policy, tokenizer, rows)
    ref = dpo_reference(reference, tokenizer, rows)
    total = 0.0
    for i, row in enumerate(rows):
        x = BETA * ((now["chosen"][i] - ref["chosen"][i]) - (now["rejected"][i] - ref["rejected"][i]))
        q = row[dpo.TARGET_COLUMN]
        log_s = -math.log1p(math.exp(-x)) if x > -30 else x
        log_s_neg = log_s - x  # log sigmoid(-x) = log sigmoid(x) - x
        total += -(q * log_s + (1 - q) * log_s_neg)
    return total / len(rows)


def _perturb(model, seed: int) -> None:
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * 0.05)


@pytest.mark.parametrize(
    "family,setup",
    [
        ("llama3", "reference"),
        ("qwen", "precomputed"),
        ("gemma", "lora"),
        ("mistral", "reference"),
    ],
)
def test_the_sigmoid_loss_is_the_cross_entropy_against_each_pairs_target(family, setup, tmp_path):
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import DPOConfig

    path = str(build_zoo_model(family, tmp_path / family))
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = dpo.load_causal_lm(path, tokenizer)
    reference = copy.deepcopy(model).eval()
    rows = _rows(tokenizer, 6)
    peft_config = None
    if setup == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules="all-linear")
    args = DPOConfig(
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        beta=BETA,
        loss_type=["sigmoid"],
        max_length=128,
        per_device_eval_batch_size=6,
        precompute_ref_log_probs=setup == "precomputed",
        report_to=[],
    )
    trainer = dpo.tokenized_trainer_class()(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        eval_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    policy = trainer.model
    _perturb(policy, seed=7)  # policy != reference: margins away from 0, where the targets matter
    policy.eval()
    batch = next(iter(trainer.get_eval_dataloader()))
    assert batch[dpo.TARGET_COLUMN].tolist() == pytest.approx([r[dpo.TARGET_COLUMN] for r in rows])
    with torch.no_grad():
        loss = trainer.compute_loss(policy, batch).item()
        batch[dpo.TARGET_COLUMN] = torch.ones(len(rows))  # certain labels: TRL's own DPO loss, unchanged
        certain = trainer.compute_loss(policy, batch).item()
    merged = policy.merge_and_unload() if setup == "lora" else policy
    expected = _expected_loss(merged, reference, tokenizer, rows)
    hard = _expected_loss(merged, reference, tokenizer, [{**r, dpo.TARGET_COLUMN: 1.0} for r in rows])
    assert abs(expected - hard) > 0.01  # the targets change the loss on these margins
    # fp32 sums of per-token log-probs read two ways (TRL's fused head, our full logits): 1e-3 apart at most
    assert loss == pytest.approx(expected, rel=1e-3)
    assert certain == pytest.approx(hard, rel=1e-3)


def _run(tiny, tmp_path: Path, rows: list[dict] | None = None, **values):
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = (
        write_jsonl(tmp_path / "train.jsonl", rows)
        if rows is not None
        else preference_file(tmp_path / "train.jsonl", 24, seed=3, conversational=True)
    )
    cfg = runner_config(
        "dpo",
        tiny,
        data,
        tmp_path / "dpo",
        learning_rate=1e-3,
        beta=BETA,
        max_steps=4,
        per_device_train_batch_size=6,
        seed=5,
        **values,
    )
    return dpo.run(cfg)


def test_label_smoothing_changes_what_the_sigmoid_loss_trains(tiny, tmp_path):
    """Conservative DPO: with eps > 0 the loss of the same steps differs from plain DPO's (TRL
    1.16's sigmoid loss ignored eps: both runs logged the very same losses)."""
    plain = _run(tiny, tmp_path / "plain")
    smoothed = _run(tiny, tmp_path / "smoothed", label_smoothing=0.3)
    assert abs(smoothed["train_loss"] - plain["train_loss"]) > 1e-3


@pytest.mark.parametrize(
    "setup",
    [{}, {"precompute_ref_log_probs": True}, {"use_lora": True, "lora_r": 8}],
    ids=["ref", "pre", "lora"],
)
def test_soft_labels_are_trained_on_and_said_so(tiny, tmp_path, setup):
    """Pairs whose soft label prefers the 'rejected' reply (p_chosen 0) move the policy the other
    way: its implicit reward ends up preferring 'rejected' on those pairs."""
    import random

    rng = random.Random(1)
    rows = []
    for i in range(24):
        good, bad = rng.choice(["Yes, good.", "Thanks, great."]), rng.choice(["No, bad.", "Go away."])
        rows.append(
            {
                "prompt": [{"role": "user", "content": f"Question {i}?"}],
                "chosen": [{"role": "assistant", "content": good}],
                "rejected": [{"role": "assistant", "content": bad}],
                "p_chosen": 0.0,
            }
        )
    held_out = write_jsonl(tmp_path / "eval.jsonl", rows)
    soft = _run(tiny, tmp_path / "soft", rows=rows, eval_dataset_path=held_out, **setup)
    assert soft["used_soft_labels"] is True
    assert soft["eval_before_margin"] == pytest.approx(0.0, abs=1e-6)
    assert soft["eval_margin"] < 0  # trained towards the soft label, not towards 'chosen'
    # held-out figures against the soft labels too, before and after (as a reward run reports them)
    assert soft["eval_before_soft_accuracy"] == pytest.approx(0.5)
    assert soft["eval_soft_accuracy"] > 0.9 and soft["eval_accuracy"] < 0.1
    assert soft["eval_soft_log_loss"] < soft["eval_before_soft_log_loss"]


def test_soft_labels_with_a_loss_that_cannot_use_them_are_said_unused(tiny, tmp_path):
    rows = [
        {"prompt": f"Question {i}?", "chosen": " Yes, good.", "rejected": " No.", "p_chosen": 0.7}
        for i in range(12)
    ]
    out = _run(tiny, tmp_path, rows=rows, loss_type="ipo")
    assert out["used_soft_labels"] is False


def _smoothed(loss_type: str):
    """A DPO config asking ``loss_type`` for conservative DPO (label_smoothing 0.1)."""
    values = {"base_model": "m", "dataset_path": "d.jsonl", "output_dir": "o", "label_smoothing": 0.1}
    return config_for("dpo", {**values, "loss_type": loss_type})


@pytest.mark.parametrize("loss_type", ["hinge", "ipo", "apo_zero", "sigmoid_norm"])
def test_label_smoothing_with_a_loss_that_ignores_it_is_refused(loss_type):
    with pytest.raises(ConfigError, match=f"label_smoothing is not used by loss_type '{loss_type}'"):
        _smoothed(loss_type)


@pytest.mark.parametrize("loss_type", ["sigmoid", "robust", "exo_pair", "aot"])
def test_label_smoothing_with_a_loss_that_reads_it_is_accepted(loss_type):
    assert _smoothed(loss_type).label_smoothing == 0.1


def test_exo_pair_without_label_smoothing_is_refused():
    with pytest.raises(ConfigError, match="exo_pair' needs label_smoothing"):
        config_for(
            "dpo", {"base_model": "m", "dataset_path": "d.jsonl", "output_dir": "o", "loss_type": "exo_pair"}
        )
