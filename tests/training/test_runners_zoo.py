"""Every runner this module covers (reward, DPO, RLOO/GRPO) on every zoo checkpoint (bf16-saved
Llama-3-, Qwen-, Gemma-like and a template-less base model) and on the real MiniLM encoder.

Must-show tests: one optimiser step at the runner's DEFAULT learning rate changes every trainable
tensor of a bf16-saved model (fp32 master weights), and tie rows are never trained.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generation.zoo import ZOO
from tests.training.conftest import runner_config, write_jsonl
from training.runners.configs import config_for
from training.runners.data import load_preferences
from training.runners.protocol import DataError

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

ZOO_NAMES = list(ZOO)

PAIRS = [
    ("Is the sky blue?", "Yes, on a clear day it is blue.", "No."),
    ("What is 2+2?", "2+2 is 4.", "Fish."),
    ("Name a colour.", "Red is a colour.", "I will not."),
    ("Say hello.", "Hello! How can I help?", "Go away."),
    ("Is water wet?", "Water makes things wet.", "Maybe."),
    ("Count to three.", "One, two, three.", "Ten."),
]


def _pairs(path: Path, *, conversational: bool, ties: int = 0) -> str:
    rows = []
    for prompt, good, bad in PAIRS:
        if conversational:
            rows.append(
                {
                    "prompt": [{"role": "user", "content": prompt}],
                    "chosen": [{"role": "assistant", "content": good}],
                    "rejected": [{"role": "assistant", "content": bad}],
                    "flag": None,
                }
            )
        else:
            rows.append({"prompt": prompt, "chosen": good, "rejected": bad, "flag": None})
    for i in range(ties):
        rows.append(
            {"prompt": f"Tie {i}?", "chosen": "Same-ish A.", "rejected": "Same-ish B.", "flag": "tie"}
        )
    return write_jsonl(path, rows)


def _tensors(path: str) -> dict:
    from safetensors.torch import load_file

    out = {}
    for f in sorted(Path(path).glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def _assert_every_tensor_changed(base: str, trained: str) -> None:
    import torch

    before, after = _tensors(base), _tensors(trained)
    common = [k for k in before if k in after and before[k].shape == after[k].shape]
    assert len(common) >= 10, sorted(after)[:5]
    unchanged = [k for k in common if torch.equal(before[k].float(), after[k].float())]
    assert not unchanged, f"{len(unchanged)}/{len(common)} tensors unchanged after one step: {unchanged[:4]}"
    assert all(after[k].dtype == torch.float32 for k in common), "trained weights are saved as fp32 masters"


def _base_cfg(kind: str, base: str, data: str, out: Path, **extra):
    return runner_config(kind, base, data, out, **{"eval_fraction": 0, **extra})


# --- bf16 master weights (defect 1) ---------------------------------------------------------------


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_reward_one_default_lr_step_changes_every_tensor_of_a_bf16_checkpoint(zoo_model, tmp_path, name):
    from training.runners import reward

    base = zoo_model(name)
    data = _pairs(tmp_path / "pairs.jsonl", conversational=ZOO[name].chat)
    cfg = _base_cfg("reward", base, data, tmp_path / "rm", max_steps=1)
    assert cfg.learning_rate == config_for("reward", {"base_model": "x", "output_dir": "y"}).learning_rate
    reward.run(cfg)
    _assert_every_tensor_changed(base, str(tmp_path / "rm"))


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_dpo_one_default_lr_step_changes_every_tensor_of_a_bf16_checkpoint(zoo_model, tmp_path, name):
    from training.runners import dpo

    base = zoo_model(name)
    data = _pairs(tmp_path / "pairs.jsonl", conversational=ZOO[name].chat)
    cfg = _base_cfg("dpo", base, data, tmp_path / "dpo", max_steps=1)
    dpo.run(cfg)
    _assert_every_tensor_changed(base, str(tmp_path / "dpo"))


# --- ties (defect 2) ------------------------------------------------------------------------------


def test_tie_rows_are_dropped_with_a_count(tmp_path, capsys):
    data = load_preferences(_pairs(tmp_path / "p.jsonl", conversational=False, ties=3))
    assert len(data.rows) == len(PAIRS) and data.dropped_ties == 3
    assert all(not r["prompt"].startswith("Tie") for r in data.rows)
    assert "Dropped 3 tie/both-bad row(s)" in capsys.readouterr().err


def test_a_file_of_only_ties_is_refused(tmp_path):
    rows = [{"prompt": "Q?", "chosen": "A", "rejected": "B", "flag": "both_bad"}] * 3
    with pytest.raises(DataError, match="3 tie/both-bad rows"):
        load_preferences(write_jsonl(tmp_path / "ties.jsonl", rows))


@pytest.mark.parametrize("kind", ["reward", "dpo"])
def test_runners_never_train_ties(zoo_model, tmp_path, kind):
    from training.runners import dpo, reward

    data = _pairs(tmp_path / "pairs.jsonl", conversational=True, ties=4)
    cfg = _base_cfg(kind, zoo_model("qwen"), data, tmp_path / kind, max_steps=1, learning_rate=1e-3)
    final = (reward if kind == "reward" else dpo).run(cfg)
    assert final["train_pairs"] == len(PAIRS) and final["dropped_tie_pairs"] == 4


# --- sampling (defect 4, the sampling this module owns) -----------------------------------------


def test_rl_eval_sampling_takes_nothing_from_generation_config(zoo_model, monkeypatch):
    """Qwen's generation_config has repetition_penalty 1.05, top_k 20, top_p 0.8: none may act."""
    from transformers import (
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    from training.runners import rl
    from training.runners.dpo import load_causal_lm
    from training.runners.models import load_tokenizer
    from training.runners.reward import load_reward_model

    path = zoo_model("qwen")
    tok = load_tokenizer(path)
    model = load_causal_lm(path, tok)
    assert model.generation_config.repetition_penalty == 1.05
    seen = []
    original = model._get_logits_processor

    def spy(*args, **kwargs):
        processors = original(*args, **kwargs)
        seen.append(list(processors))
        return processors

    monkeypatch.setattr(model, "_get_logits_processor", spy)
    cfg = config_for(
        "rloo",
        {
            "base_model": path,
            "reward_model": path,
            "output_dir": "x",
            "max_completion_length": 4,
            "temperature": 0.9,
        },
    )
    rm = load_reward_model(path, tok, trainable=False)
    out = rl._eval_reward(model, tok, rm, tok, [[{"role": "user", "content": "Hi?"}]], cfg)
    assert "reward" in out and seen
    kinds = {type(p) for p in seen[0]}
    assert not kinds & {RepetitionPenaltyLogitsProcessor, TopKLogitsWarper, TopPLogitsWarper}, kinds
    temps = [p.temperature for p in seen[0] if isinstance(p, TemperatureLogitsWarper)]
    assert temps == [0.9]


# --- RLOO / GRPO across the zoo -------------------------------------------------------------------


def test_rloo_bf16_held_out_reward_after_training_reads_the_policy_in_fp32(zoo_model, tmp_path, monkeypatch):
    """bf16: the held-out reward after training samples the policy in fp32, as before training, so
    a policy that has not moved (learning_rate 1e-12) samples the same completions (fixed seed) and
    scores what it scored before; before, it sampled through the training's bf16 autocast."""
    from training.runners import rl

    base = zoo_model("llama3")
    data = _pairs(tmp_path / "pairs.jsonl", conversational=True)
    cfg = _base_cfg(
        "rloo", base, data, tmp_path / "rloo", reward_model=base, max_steps=1, num_generations=2,
        per_device_train_batch_size=2, max_completion_length=6, eval_fraction=0.5, bf16=True,
        learning_rate=1e-12,
    )  # fmt: skip
    import torch
    from transformers import AutoModelForCausalLM

    sampled_with = []
    real = rl._eval_reward

    def spy(model, *args, **kw):
        sampled_with.append(model)
        return real(model, *args, **kw)

    monkeypatch.setattr(rl, "_eval_reward", spy)
    final = rl.run("rloo", cfg)
    assert final["eval_reward"] == pytest.approx(final["eval_before_reward"], abs=1e-6), final
    # the policy the figure after training sampled computes what the saved policy computes
    ids = torch.tensor([[1, 5, 9, 13, 17, 21]])
    saved = AutoModelForCausalLM.from_pretrained(str(tmp_path / "rloo")).eval()
    with torch.no_grad():
        after = sampled_with[-1](input_ids=ids).logits.float()
        expected = saved(input_ids=ids).logits.float()
    assert torch.allclose(after, expected, atol=1e-5), (after - expected).abs().max()


@pytest.mark.parametrize("kind", ["rloo", "grpo"])
@pytest.mark.parametrize("name", ZOO_NAMES)
def test_rloo_grpo_on_every_zoo_model(zoo_model, tmp_path, name, kind, monkeypatch):
    from core.formatting import reward_input_ids
    from training.runners import rl
    from training.runners.models import load_tokenizer

    base = zoo_model(name)
    data = _pairs(tmp_path / "pairs.jsonl", conversational=ZOO[name].chat)
    scored: list[list[int]] = []
    real_score = rl.score_sequences

    def spy(model, seqs, **kw):
        scored.extend(seqs)
        return real_score(model, seqs, **kw)

    monkeypatch.setattr(rl, "score_sequences", spy)
    cfg = _base_cfg(
        kind,
        base,
        data,
        tmp_path / kind,
        reward_model=base,  # a frozen bf16 scorer (random head): what matters here is the plumbing
        max_steps=1,
        num_generations=2,
        per_device_train_batch_size=2,
        max_completion_length=6,
        eval_fraction=0.34,
    )
    final = rl.run(kind, cfg)
    assert "eval_reward" in final and "eval_before_reward" in final
    assert Path(final["output_dir"], "config.json").is_file()
    tok = load_tokenizer(base)
    # every scored sequence is a reward-training sequence: it ends with an end token, unless its
    # completion was cut off at max_completion_length (then no special token at all; see
    # tests/training/test_rl_inputs.py)
    from core.formatting import special_ids, stop_token_ids

    ends = set(stop_token_ids(tok))
    assert scored and all(s[-1] in ends or s[-1] not in special_ids(tok) for s in scored)
    # and a (prompt, text) is scored on exactly the ids reward training builds for it
    prompt = [{"role": "user", "content": "Q?"}] if ZOO[name].chat else "Q?"
    fn = rl.reward_function(rl.load_reward_model(base, tok, trainable=False), tok, 64, lambda: "cpu")
    scored.clear()
    fn([prompt], ["An answer."])
    assert scored == [reward_input_ids(tok, prompt, "An answer.", 64)]


# --- honest before/after, evaluation entry points ---------------------------------------------------


def test_dpo_eval_before_is_computed_like_after(zoo_model, tmp_path):
    from training.runners import dpo

    data = _pairs(tmp_path / "pairs.jsonl", conversational=True)
    cfg = _base_cfg("dpo", zoo_model("llama3"), data, tmp_path / "dpo", max_steps=2, learning_rate=1e-3)
    cfg.eval_fraction = 0.34
    final = dpo.run(cfg)
    assert final["eval_before_accuracy"] == 0.5  # policy == reference: every pair a tie, not 0
    assert final["eval_before_margin"] == 0.0
    assert "eval_accuracy_ci_low" in final and "eval_loss" in final


@pytest.mark.parametrize("use_lora", [False, True])
def test_reward_bf16_held_out_figures_after_training_are_the_saved_models(zoo_model, tmp_path, use_lora):
    """As for DPO: bf16 wraps the trained reward model's forward in autocast; the figures after
    training must read it in fp32, as before training, so a model that has not moved scores what it
    scored before, and the reported figures are the saved model's. Before (full fine-tuning), an
    unmoved model's mean reward moved from 0.03347 to 0.03287 by bf16 rounding alone."""
    from training.runners import reward
    from training.services.evaluation import evaluate_reward_model

    base = zoo_model("llama3")
    data = _pairs(tmp_path / "pairs.jsonl", conversational=True)
    extra = {"bf16": True, "use_lora": use_lora, "eval_dataset_path": data, "max_steps": 1}
    still = reward.run(_base_cfg("reward", base, data, tmp_path / "still", learning_rate=1e-12, **extra))
    for key in ("margin", "reward"):
        assert still[f"eval_{key}"] == pytest.approx(still[f"eval_before_{key}"], abs=1e-6), (key, still)
    final = reward.run(_base_cfg("reward", base, data, tmp_path / "rm", learning_rate=1e-3, **extra))
    saved = evaluate_reward_model(str(tmp_path / "rm"), data)
    assert final["eval_reward"] == pytest.approx(saved["reward"], abs=1e-6)
    assert final["eval_margin"] == pytest.approx(saved["margin"], abs=1e-6)
    assert final["eval_accuracy"] == saved["accuracy"]


@pytest.mark.parametrize("precompute", [False, True])
@pytest.mark.parametrize("use_lora", [False, True])
def test_dpo_bf16_held_out_figures_after_training_are_the_saved_models(
    zoo_model, tmp_path, use_lora, precompute
):
    """bf16 (honoured on CPU when asked): accelerate wraps the trained model's forward in bf16
    autocast for training; the held-out figures after training must still read the model in fp32,
    as the reference and the before figures are read, so they are the saved (fp32) model's figures.
    Before, full fine-tuning scored the autocast forward against the fp32 reference: a policy that
    had not moved (learning_rate 1e-12) showed eval_accuracy 1.0 and a margin of 1.3e-4 from bf16
    rounding alone, and the reported margin was not the saved model's. With precomputed reference
    log-probs TRL's evaluate() before training wraps the forward too: the figures before training
    showed eval_before_accuracy 1.0 and a margin of 1.7e-4 for a policy equal to its reference."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.runners import dpo
    from training.runners.data import dpo_ids
    from training.services.evaluation import dpo_figures, dpo_reference

    base = zoo_model("llama3")
    data = _pairs(tmp_path / "pairs.jsonl", conversational=True)
    extra = {"bf16": True, "use_lora": use_lora, "precompute_ref_log_probs": precompute}
    extra.update(eval_dataset_path=data, max_steps=1)
    still = dpo.run(_base_cfg("dpo", base, data, tmp_path / "still", learning_rate=1e-12, **extra))
    assert still["eval_before_accuracy"] == 0.5 and still["eval_before_margin"] == 0.0, still
    assert still["eval_accuracy"] == 0.5 and still["eval_margin"] == pytest.approx(0.0, abs=1e-6), still
    cfg = _base_cfg("dpo", base, data, tmp_path / "dpo", learning_rate=1e-3, **extra)
    final = dpo.run(cfg)
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "dpo"))
    pairs = [dpo_ids(tok, r) for r in load_preferences(data).rows]
    reference = dpo_reference(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), tok, pairs)
    saved = AutoModelForCausalLM.from_pretrained(str(tmp_path / "dpo"))
    figures = dpo_figures(saved, tok, pairs, reference, beta=cfg.beta)
    assert final["eval_margin"] == pytest.approx(figures["margin"], abs=1e-6)
    assert final["eval_accuracy"] == figures["accuracy"]


def test_reward_runner_and_evaluate_reward_agree_on_minilm(minilm_path, tmp_path):
    """The real MiniLM encoder (BERT: no EOS, [SEP] ends every sequence) trains as a reward model, and
    ``evaluate_reward`` reproduces the runner's own held-out figures on the same rows."""
    from django.core.management import call_command

    from training.runners import reward

    rows = []
    for i in range(12):
        prompt, good, bad = PAIRS[i % len(PAIRS)]
        rows.append({"prompt": f"{prompt} ({i})", "chosen": good, "rejected": bad})
    train = write_jsonl(tmp_path / "train.jsonl", rows[:8])
    held = write_jsonl(tmp_path / "held.jsonl", rows[8:])
    cfg = _base_cfg("reward", minilm_path, train, tmp_path / "rm", max_steps=2, eval_dataset_path=held)
    final = reward.run(cfg)
    assert final["eval_pairs"] == 4 and 0 <= final["eval_accuracy"] <= 1
    import io

    buf = io.StringIO()
    call_command(
        "evaluate_reward", "--model", str(tmp_path / "rm"), "--dataset", held, "--max-length", "64", "--json",
        stdout=buf,
    )  # fmt: skip
    figures = json.loads(buf.getvalue())
    assert figures["pairs"] == 4
    assert figures["accuracy"] == final["eval_accuracy"]
    assert figures["margin"] == pytest.approx(final["eval_margin"], abs=1e-4)


def test_evaluate_reward_reads_hh_rows_and_refuses_bad_input(zoo_model, tmp_path):
    import io

    from django.core.management import call_command
    from django.core.management.base import CommandError

    hh = [
        {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello there!", "rejected": "\n\nHuman: Hi\n\nAssistant: Go."},
        {"chosen": "\n\nHuman: 2+2?\n\nAssistant: 4", "rejected": "\n\nHuman: 2+2?\n\nAssistant: 5"},
    ]
    path = write_jsonl(tmp_path / "hh.jsonl", hh)
    # a reward model: the base checkpoint as a sequence classifier (a causal LM itself is refused)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    rm = str(tmp_path / "rm")
    AutoModelForSequenceClassification.from_pretrained(zoo_model("base"), num_labels=1).save_pretrained(rm)
    AutoTokenizer.from_pretrained(zoo_model("base")).save_pretrained(rm)
    buf = io.StringIO()
    call_command("evaluate_reward", "--model", rm, "--dataset", path, stdout=buf)
    assert buf.getvalue().startswith("pairs 2  accuracy ")
    assert "95% CI" in buf.getvalue() and "mean margin" in buf.getvalue()
    with pytest.raises(CommandError, match="not found"):
        call_command("evaluate_reward", "--model", rm, "--dataset", str(tmp_path / "none.jsonl"))
    with pytest.raises(CommandError, match=r"^--model: .*no config\.json"):
        call_command("evaluate_reward", "--model", str(tmp_path), "--dataset", path)


def test_bootstrap_interval_brackets_the_accuracy():
    from training.services.evaluation import pair_figures

    f = pair_figures([1.0] * 70 + [0.0] * 30, [0.5] * 100)
    assert f["accuracy"] == 0.7 and f["accuracy_ci_low"] < 0.7 < f["accuracy_ci_high"]
    assert f["accuracy_ci_high"] - f["accuracy_ci_low"] < 0.25
    assert pair_figures([1.0], [1.0])["accuracy"] == 0.5


def test_dpo_on_a_base_model_renders_conversations_as_plain_transcripts(zoo_model, tmp_path):
    from training.runners import dpo

    data = _pairs(tmp_path / "pairs.jsonl", conversational=True)
    final = dpo.run(_base_cfg("dpo", zoo_model("base"), data, tmp_path / "dpo", max_steps=1))
    assert final["train_pairs"] == len(PAIRS)
