"""DPO: TRL ``DPOTrainer`` on preference pairs, starting from a causal LM.

The implicit reward of a response is beta * (log pi(y|x) - log pi_ref(y|x)); the loss pushes the
chosen response's implicit reward above the rejected one's. Evaluation on held-out pairs, before and
after training: TRL's DPO loss, and the implicit reward's preference accuracy and margin computed by
``training.services.evaluation.dpo_figures`` the same way before and after (share of pairs where the
chosen response gets the higher implicit reward, ties half: before training both rewards are 0, so
the accuracy is 0.5, not 0).

Trainable weights are fp32 masters whatever the checkpoint's dtype (bf16 compute by autocast when
``bf16``); the saved model is fp32.

Options (``DPORunConfig``): ``precompute_ref_log_probs`` runs the frozen reference over the data once
before training instead of keeping it alongside the policy; ``use_lora`` trains LoRA adapters (peft)
whose reference is the base model with adapters off, and merges them into the saved model.

Length (``max_length``): TRL keeps the start of a too-long sequence and drops, uncounted, a row whose
prompt alone fills ``max_length``. So each row's prompt is fitted first (``data.fit_prompt``, checked
by tokenising the row as TRL does): a long prompt loses its earliest turns, then the start of its
earliest remaining user turn (a plain prompt: the start of its text, at a word), keeping the
template's BOS, role headers and generation prompt, until prompt + the longer reply, end token
included, fit. A row whose reply does not fit even after an emptied prompt follows ``long_replies``:
"truncate" (the default, TRL's own behaviour) keeps the end of its prompt within half of
``max_length`` and lets TRL cut the end of the reply (counted as ``truncated_replies``); "drop"
leaves it out (``dropped_too_long``; held-out rows: ``*_eval``, left out of TRL's eval loss and of
the accuracy/margin alike). No row left is an error. ``train_pairs`` is the number of rows TRL's
processed train dataset holds.
"""

from __future__ import annotations

import sys
from typing import Any

from core.formatting import plain_prompt, plain_response, uses_template
from training.runners.configs import DPORunConfig
from training.runners.data import fit_prompt, load_pair_splits
from training.runners.models import (
    atomic_output,
    check_tokenizer_fits,
    load_tokenizer,
    require_causal_lm,
    write_run_record,
)
from training.runners.protocol import DataError, Emitter, ModelError, Timer, first_line, trainer_callback
from training.runners.reward import save_trained, training_arguments
from training.services.evaluation import dpo_figures, dpo_reference


def load_causal_lm(path: str, tokenizer, *, role: str = "policy", trainable: bool = True):
    """A causal LM; ``trainable`` loads fp32 master weights whatever the checkpoint's dtype (see
    ``reward.load_reward_model``), a frozen one (a reference) keeps the checkpoint's dtype."""
    import torch
    from transformers import AutoModelForCausalLM

    require_causal_lm(path, role)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32 if trainable else "auto")
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"Cannot load {path!r} as a causal LM: {first_line(exc)}") from exc
    check_tokenizer_fits(tokenizer, model, path)
    return model


TRL_EVAL_FIGURES = ("eval_rewards/accuracies", "eval_rewards/margins")


def _honest(trl_eval: dict[str, Any], figures: dict[str, float]) -> dict[str, Any]:
    """TRL's eval loss with our accuracy/margin (ties half: 0.5 before training, not TRL's 0)."""
    kept = {k: v for k, v in trl_eval.items() if k not in TRL_EVAL_FIGURES}
    return {**kept, **{f"eval_{k}": v for k, v in figures.items()}}


def run(cfg: DPORunConfig, emitter: Emitter | None = None) -> dict[str, Any]:
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    emitter = emitter or Emitter(cfg.metrics_file)
    timer = Timer()
    data, train_rows, eval_rows = load_pair_splits(cfg)
    tokenizer = load_tokenizer(cfg.base_model)

    def as_text(row):
        """Plain text where no chat template applies (core.formatting): the transcript prompt, and the
        separator put in front of each reply, so TRL joins "question?" and "Answer" as the reward
        model and generation see them."""
        if uses_template(tokenizer, row["prompt"], row["chosen"]):
            return row
        prompt = plain_prompt(row["prompt"])
        return {
            **row,
            "prompt": prompt,
            "chosen": plain_response(prompt, row["chosen"]),
            "rejected": plain_response(prompt, row["rejected"]),
        }

    def fit(rows, split: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, int]:
        """(the rows TRL is given, the source rows they come from, how many were too long and
        dropped, how many TRL will truncate: ``long_replies``)."""
        given, kept, truncated = [], [], 0
        for r in rows:
            fitted = fit_prompt(tokenizer, r, cfg.max_length, render=as_text)
            if fitted is None and cfg.long_replies == "truncate":
                fitted = fit_prompt(
                    tokenizer, r, cfg.max_length, render=as_text, prompt_budget=cfg.max_length // 2
                )
                truncated += fitted is not None
            if fitted is not None:
                given.append({k: v for k, v in fitted.items() if k != "margin"})
                kept.append(r)
        dropped = len(rows) - len(kept)
        if dropped:
            print(
                f"Dropped {dropped} {split} pair(s) whose reply alone is longer than max_length={cfg.max_length} "
                "tokens: the reply would lose its end.",
                file=sys.stderr,
            )
        if truncated:
            print(
                f"{truncated} {split} pair(s) have a reply longer than max_length={cfg.max_length} tokens with its "
                "prompt: the prompt keeps its end within half of max_length and TRL cuts the end of the reply.",
                file=sys.stderr,
            )
        return given, kept, dropped, truncated

    train_given, _, dropped_train, truncated_train = fit(train_rows, "training")
    if not train_given:
        raise DataError(
            f"No training pair fits max_length={cfg.max_length}: every one of the {len(train_rows)} pairs has a "
            "reply longer than that on its own. Raise max_length."
        )
    eval_given, eval_rows, dropped_eval, truncated_eval = (
        fit(eval_rows, "held-out") if eval_rows else ([], [], 0, 0)
    )
    train_ds = Dataset.from_list(train_given)
    eval_ds = Dataset.from_list(eval_given) if eval_given else None

    import transformers

    transformers.set_seed(cfg.seed)
    model = load_causal_lm(cfg.base_model, tokenizer)
    peft_config = None
    if cfg.use_lora:
        from peft import LoraConfig

        peft_config = LoraConfig(
            task_type="CAUSAL_LM",
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=cfg.lora_target_modules,
        )

    with atomic_output(cfg.output_dir, overwrite=cfg.overwrite_output_dir) as tmp:
        args = DPOConfig(
            **training_arguments(cfg, str(tmp / "checkpoints")),
            beta=cfg.beta,
            loss_type=[cfg.loss_type],
            label_smoothing=cfg.label_smoothing,
            max_length=cfg.max_length,
            precompute_ref_log_probs=cfg.precompute_ref_log_probs,
        )
        trainer = DPOTrainer(
            model=model,
            args=args,
            train_dataset=train_ds,
            eval_dataset=eval_ds,
            processing_class=tokenizer,
            # TRL's held-out accuracy/margin count ties as 0: ours (ties half) are charted instead
            callbacks=[trainer_callback(emitter, drop=TRL_EVAL_FIGURES)],
            peft_config=peft_config,
        )
        # Held-out implicit-reward figures (training.services.evaluation), the same before and after;
        # TRL's own eval loss is kept beside them.
        eval_kw = {"max_length": cfg.max_length, "batch_size": cfg.per_device_eval_batch_size}
        reference = dpo_reference(model, tokenizer, eval_rows, **eval_kw) if eval_rows else {}
        before = trainer.evaluate() if eval_ds is not None else {}
        if eval_rows:
            figures = dpo_figures(model, tokenizer, eval_rows, reference, beta=cfg.beta, **eval_kw)
            before = _honest(before, figures)
            emitter.metrics(0, {f"eval_{k}": v for k, v in figures.items()})
        train_pairs = len(trainer.train_dataset)  # after TRL's own tokenising and filtering
        if train_pairs != len(train_ds):
            print(
                f"TRL dropped {len(train_ds) - train_pairs} of {len(train_ds)} fitted training pairs.",
                file=sys.stderr,
            )
        result = trainer.train()
        after = trainer.evaluate() if eval_ds is not None else {}
        model = trainer.model.merge_and_unload() if cfg.use_lora else trainer.model
        if eval_rows:
            figures = dpo_figures(model, tokenizer, eval_rows, reference, beta=cfg.beta, **eval_kw)
            after = _honest(after, figures)
            emitter.metrics(result.global_step, {f"eval_{k}": v for k, v in figures.items()})
        final: dict[str, Any] = {
            "train_loss": result.training_loss,
            "train_pairs": train_pairs,
            "dropped_too_long": dropped_train,
            "dropped_too_long_eval": dropped_eval,
            "truncated_replies": truncated_train,
            "truncated_replies_eval": truncated_eval,
            "dropped_identical_pairs": data.dropped_identical,
            "dropped_tie_pairs": data.dropped_ties,
            "precompute_ref_log_probs": cfg.precompute_ref_log_probs,
            "lora": cfg.use_lora,
            **after,
            **{k.replace("eval_", "eval_before_", 1): v for k, v in before.items()},
            "seconds": timer.seconds,
        }
        save_trained(trainer, model, tokenizer, tmp, merged=cfg.use_lora)
        write_run_record(tmp, "dpo", cfg.as_dict(), final)
    final["output_dir"] = cfg.output_dir
    return emitter.final(final)
