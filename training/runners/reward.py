"""Reward model: TRL ``RewardTrainer`` (Bradley-Terry) on preference pairs.

loss = -log sigmoid(r(x, y_chosen) - r(x, y_rejected) - margin), ``margin`` when the data has it
(an export's preference strength) and ``use_margin`` is on. The model is
``AutoModelForSequenceClassification(num_labels=1)`` on the base model's trunk.

Soft labels: when rows carry ``p_chosen`` (an export's ``soft_labels``: the reliability model's
probability that chosen is preferred), the loss is the soft Bradley-Terry target
-(p log sigmoid(d - margin) + (1 - p) log sigmoid(-d - margin)), d = r(chosen) - r(rejected)
(``soft_preference_loss``); a row without ``p_chosen`` counts as p = 1, and data with no
``p_chosen`` at all trains with TRL's own loss, unchanged. The log says when soft labels are used,
and the final metrics carry ``used_soft_labels``. A ``p_chosen`` that is not a number from 0 to 1 is
refused, naming its line (``data.load_preferences``).

Trainable weights are fp32 masters whatever the checkpoint's dtype (a bf16 checkpoint stepped in
bf16 loses most small updates); bf16 compute comes from autocast when ``bf16`` is on. The saved model
is fp32 (``torch_dtype`` float32 in its config): the masters as trained, nothing rounded away.

Sequences are ``core.formatting.reward_input_ids`` (the ids PPO/RLOO/GRPO scoring and
``evaluate_reward`` use too): a plain-text prompt starts with the tokenizer's own BOS/[CLS], every
response ends with an end token (end-of-turn, EOS, or [SEP] for BERT-style encoders without EOS), and
the reward is read there.

Pairs are tokenised here (not by TRL) so that a long conversation keeps its end: the prompt is cut
from the left, the reply from the right, within ``max_length`` (TRL would drop such pairs). A
training pair whose two sequences are the same ids once cut (the replies differ only past the cut)
teaches nothing and is left out, counted as ``dropped_cut_identical_pairs``; when no pair is left,
the run fails with a ``DataError`` naming ``max_length``, before the model is loaded.
Evaluation on the held-out pairs, before and after training: pair accuracy (share of pairs the model
ranks chosen above rejected; ties count half) and the mean reward margin r(chosen) - r(rejected); with
soft labels also ``soft_accuracy`` and ``soft_log_loss`` (``evaluation.pair_figures``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from training.runners.configs import BaseRunConfig, RewardRunConfig
from training.runners.data import pair_run_start, tokenize_pairs
from training.runners.models import (
    CHECKPOINT_PREFIX,
    CheckpointMismatch,
    as_shipped,
    atomic_output,
    check_not_past_the_end,
    check_tokenizer_fits,
    checkpoint_processes,
    checkpoint_step,
    checkpoints_dir,
    load_dtype,
    lora_config,
    model_config,
    pad_apart_from_ends,
    resolve_bf16,
    resolve_use_cpu,
    restore_lora_dropout,
    resume_checkpoint,
    write_checkpoint_record,
    write_run_record,
)
from training.runners.models import checkpoint_record as models_checkpoint_record
from training.runners.protocol import DataError, Emitter, ModelError, Timer, first_line, trainer_callback
from training.services.evaluation import evaluate_pairs, score_sequences  # noqa: F401  (PPO imports it here)


def training_arguments(cfg: BaseRunConfig, staging: Path) -> dict[str, Any]:
    """The transformers ``TrainingArguments`` every TRL runner shares. Checkpoints (``save_steps``)
    go beside the output (``checkpoints_dir``), where a failed run keeps them for resuming; with
    none, the trainer's folder is inside ``staging`` (the run's temporary output)."""
    use_cpu = resolve_use_cpu(cfg.use_cpu)
    saving = {"save_strategy": "no"}
    if cfg.save_steps:
        saving = {
            "save_strategy": "steps",
            "save_steps": cfg.save_steps,
            "save_total_limit": cfg.save_total_limit,
        }
    return {
        "output_dir": str(checkpoints_dir(cfg.output_dir) if cfg.save_steps else staging / "checkpoints"),
        "learning_rate": cfg.learning_rate,
        "num_train_epochs": cfg.num_train_epochs,
        "max_steps": cfg.max_steps,
        "per_device_train_batch_size": cfg.per_device_train_batch_size,
        "per_device_eval_batch_size": cfg.per_device_eval_batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "weight_decay": cfg.weight_decay,
        "warmup_steps": cfg.warmup_steps,
        "lr_scheduler_type": cfg.lr_scheduler_type,
        "max_grad_norm": cfg.max_grad_norm,
        "logging_steps": cfg.logging_steps,
        "seed": cfg.seed,
        "bf16": resolve_bf16(cfg.bf16, use_cpu),
        "use_cpu": use_cpu,
        "report_to": [],
        **saving,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        # TRL turns gradient checkpointing on by default (its deprecated name); say what we want.
        "activation_checkpointing": cfg.gradient_checkpointing,
    }


class _NothingLeftToTrain(Exception):
    """Raised by ``_stop_at_the_end`` before a step past ``max_steps`` (caught by ``train``)."""


def _stop_at_the_end(checkpoint: Path):
    """A trainer callback refusing a step once ``max_steps`` are done. transformers resumes from a
    checkpoint in the middle of an epoch without checking ``max_steps`` first: resumed from the
    checkpoint of a run's last step, it trained one step more (step N + 1 of N). A normal run never
    begins a step at ``max_steps`` (it stops after the last), so this fires only then. A
    ``checkpoint`` past the run's last step is refused at the start (``check_not_past_the_end``)."""
    from transformers import TrainerCallback

    class StopAtTheEnd(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            # the checkpoint's step and this run's last, as transformers has them now
            check_not_past_the_end(checkpoint, state.global_step, state.max_steps)

        def on_step_begin(self, args, state, control, **kwargs):
            if 0 < state.max_steps <= state.global_step:
                raise _NothingLeftToTrain

    return StopAtTheEnd()


def _record_checkpoints(record: dict[str, Any]):
    """A trainer callback writing ``record`` into each checkpoint the trainer saves, before the
    trainer writes anything there: a checkpoint is whole once its ``trainer_state.json`` is written
    (``checkpoint_step``), and ``on_save`` comes after that, so a run stopped in between would leave
    a whole checkpoint that no record checks. ``on_step_end`` runs once transformers has decided
    to save this step (``control.should_save``) and before it saves; ``on_save`` writes it again
    for a save decided elsewhere (an epoch's end)."""
    from transformers import TrainerCallback

    def write(args, state, *, make: bool) -> None:
        folder = Path(args.output_dir) / f"{CHECKPOINT_PREFIX}{state.global_step}"
        if state.is_world_process_zero and (make or folder.is_dir()):
            folder.mkdir(parents=True, exist_ok=True)
            write_checkpoint_record(folder, record)

    class RecordCheckpoints(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if control.should_save:
                write(args, state, make=True)

        def on_save(self, args, state, control, **kwargs):
            write(args, state, make=False)

    return RecordCheckpoints()


def checkpoint_record(kind: str, cfg: BaseRunConfig, train_rows: int) -> dict[str, Any]:
    """A TRL runner's checkpoint record (``models.checkpoint_record``: checked against a
    ``resume_from`` checkpoint before any model loads): its batches place its data."""
    return models_checkpoint_record(
        kind,
        cfg,
        train_rows,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
    )


def train(trainer, cfg: BaseRunConfig, record: dict[str, Any]):
    """``trainer.train()``, continuing from ``cfg.resume_from``'s checkpoint when it names one (the
    trainer restores weights, optimiser, scheduler, RNG and the data position, and trains the
    steps left). Resumed from a checkpoint with no step left, the checkpoint's weights are loaded
    and nothing is trained: the result's ``training_loss`` is then None (no step, no loss).
    Each checkpoint it writes holds ``record`` (``checkpoint_record``, which checked the one
    resumed from before the models loaded)."""
    from transformers.trainer_utils import TrainOutput

    trainer.add_callback(_record_checkpoints(record))
    checkpoint = resume_checkpoint(cfg.resume_from) if cfg.resume_from else None
    if checkpoint is None:
        return trainer.train()
    step = checkpoint_step(checkpoint)
    written, running = checkpoint_processes(checkpoint), trainer.accelerator.num_processes
    if written is not None and written != running:
        # each step was the batches of `written` processes: the data position, the steps left and
        # the per-process RNG states would mean other rows (transformers only logs it, at info level)
        raise CheckpointMismatch(
            f"The checkpoint at step {step} was written by {written} processes and this run has "
            f"{running}: resumed so, it would not continue that run. Resume it with {written} "
            f"processes (the run's config.launch.num_processes, or train --launch --num-processes {written})."
        )
    print(f"[prefhub] resuming from {checkpoint} (step {step})", flush=True)
    trainer.add_callback(_stop_at_the_end(checkpoint))
    try:
        result = trainer.train(resume_from_checkpoint=str(checkpoint))
    except _NothingLeftToTrain:
        result = TrainOutput(trainer.state.global_step, None, {})
    if result.global_step == step:  # at an epoch's end transformers trains nothing but says loss 0.0
        print("[prefhub] the checkpoint is the run's last step: nothing left to train", flush=True)
        return result._replace(training_loss=None)
    return result


def resumed(cfg: BaseRunConfig) -> dict[str, int]:
    """The final figure saying where a resumed run took over (nothing for a run from the start)."""
    checkpoint = resume_checkpoint(cfg.resume_from) if cfg.resume_from else None
    return {"resumed_from_step": checkpoint_step(checkpoint)} if checkpoint is not None else {}


def save_trained(trainer, model, tokenizer, out, *, merged: bool, policy_of: str = "") -> None:
    """Save the full model: the trainer's save (gathers DeepSpeed/FSDP shards), or a merged LoRA model.

    policy_of: the base model of a policy (DPO, RLOO, GRPO), saved with the base's tokenizer and
    special ids as it ships them (``models.as_shipped``); a reward model keeps its own (its pad)."""
    if policy_of:
        tokenizer = as_shipped(model, tokenizer, policy_of)
    if merged:
        if trainer.accelerator.is_main_process:
            model.save_pretrained(str(out), safe_serialization=True)
    else:
        trainer.save_model(str(out))
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(str(out))


def load_reward_model(path: str, tokenizer=None, *, trainable: bool = True):
    """A sequence-classification model with one output (the reward), pad token wired for pooling:
    ``tokenizer`` (the reward model's own) gets a pad that no sequence ends with
    (``pad_apart_from_ends``), so the score is read at the end token.

    trainable: load fp32 master weights whatever the checkpoint's dtype (a bf16 checkpoint stepped
    in bf16 loses most small updates); bf16 compute comes from autocast (``bf16``). A frozen scorer
    (``trainable=False``: PPO/RLOO/GRPO rewards) keeps the checkpoint's own dtype
    (``models.load_dtype``).
    """
    from transformers import AutoModelForSequenceClassification

    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=1, dtype=load_dtype(trainable=trainable)
        )
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"Cannot load {path!r} as a reward model: {first_line(exc)}") from exc
    if tokenizer is not None:
        if pad_apart_from_ends(tokenizer):
            model.resize_token_embeddings(len(tokenizer))
        check_tokenizer_fits(tokenizer, model, path)
        model.config.pad_token_id = tokenizer.pad_token_id
    return model


def soft_preference_loss(chosen, rejected, p, margin=None):
    """The soft Bradley-Terry loss of a batch of rewards: the mean over pairs of
    -(p log sigmoid(d - m) + (1 - p) log sigmoid(-d - m)), d = ``chosen`` - ``rejected``, ``p`` the
    probability that chosen is preferred, ``m`` the margin (0 when None) that the preferred side must
    win by. With p = 1 everywhere it is exactly TRL's -log sigmoid(d - m)."""
    import torch.nn.functional as F

    diff = chosen - rejected
    m = 0.0 if margin is None else margin
    return -(p * F.logsigmoid(diff - m) + (1 - p) * F.logsigmoid(-diff - m)).mean()


def soft_label_trainer_classes():
    """(a TRL ``RewardTrainer`` training on ``soft_preference_loss``, its collator): the collator
    adds the batch's ``p_chosen`` to TRL's ``DataCollatorForPreference`` batch; the trainer keeps the
    column (TRL would drop it as unused) and replaces TRL's loss by the soft one, adding TRL's
    ``center_rewards_coefficient`` term as TRL does; its logged figures stay TRL's."""
    import torch
    from trl import RewardTrainer
    from trl.trainer.reward_trainer import DataCollatorForPreference

    class SoftLabelCollator(DataCollatorForPreference):
        def torch_call(self, examples):
            batch = super().torch_call(examples)
            batch["p_chosen"] = torch.tensor([e["p_chosen"] for e in examples], dtype=torch.float)
            return batch

    class SoftLabelRewardTrainer(RewardTrainer):
        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            if "p_chosen" not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, "p_chosen"]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            p = inputs.pop("p_chosen")
            _, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
            chosen, rejected = torch.chunk(outputs.logits.squeeze(-1), chunks=2)
            loss = soft_preference_loss(chosen, rejected, p.to(chosen.dtype), inputs.get("margin"))
            if self.args.center_rewards_coefficient is not None:
                loss = loss + self.args.center_rewards_coefficient * torch.mean((chosen + rejected) ** 2)
            return (loss, outputs) if return_outputs else loss

    return SoftLabelRewardTrainer, SoftLabelCollator


def pair_metrics(
    model, pairs: list[dict[str, Any]], *, pad_id: int, batch_size: int = 16
) -> dict[str, float]:
    """Held-out pair accuracy (ties count half, bootstrap CI) and mean reward margin
    (``training.services.evaluation``), the same before and after training."""
    return evaluate_pairs(model, pairs, pad_id=pad_id, batch_size=batch_size)


def run(cfg: RewardRunConfig, emitter: Emitter | None = None) -> dict[str, Any]:
    """Train a reward model; return the final metrics (also emitted)."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    emitter = emitter or Emitter(cfg.metrics_file)
    timer = Timer()
    data, train_rows, eval_rows, tokenizer = pair_run_start(cfg, reward=True)
    use_margin = cfg.use_margin and data.has_margin
    soft = data.has_soft_labels
    # An encoder's position table bounds the sequence (BERT/MiniLM: 512), whatever max_length says.
    positions = getattr(model_config(cfg.base_model), "max_position_embeddings", None) or cfg.max_length
    max_length = min(cfg.max_length, positions)
    train_tok = tokenize_pairs(tokenizer, train_rows, max_length, margin=use_margin, soft=soft)
    # A pair whose replies differ only past the cut reads the same to the model: it teaches nothing.
    differing = [t for t in train_tok if t["chosen_ids"] != t["rejected_ids"]]
    cut_identical = len(train_tok) - len(differing)
    if not differing:
        raise DataError(
            f"No training pair differs within max_length={max_length} tokens: all {cut_identical} "
            "training pairs read the same once cut (their replies differ only past the cut). Raise "
            "max_length, or shorten the prompts and replies."
        )
    train_tok = differing
    record = checkpoint_record("reward", cfg, len(train_tok))
    if soft:
        below = sum(t["p_chosen"] < 1 for t in train_tok)
        print(
            f"Soft labels: training on p_chosen ({below} of {len(train_tok)} training pairs below 1; a row "
            "without p_chosen counts as 1): "
            + (
                "loss = -(p log sigmoid(d - m) + (1 - p) log sigmoid(-d - m)), m the pair's margin"
                if use_margin
                else "loss = -(p log sigmoid(d) + (1 - p) log sigmoid(-d))"
            )
            + ", d = r(chosen) - r(rejected).",
            file=sys.stderr,
        )
    # = evaluation.pair_ids; held-out pairs with soft labels keep their p_chosen for the soft figures,
    # whether or not the training rows have any (a held-out file of its own may: evaluate_reward's)
    eval_soft = any("p_chosen" in r for r in eval_rows)
    eval_tok = tokenize_pairs(tokenizer, eval_rows, max_length, margin=False, soft=eval_soft)

    import transformers

    transformers.set_seed(cfg.seed)
    model = load_reward_model(cfg.base_model, tokenizer)
    peft_config = lora_config(cfg, "SEQ_CLS")

    before = pair_metrics(
        model, eval_tok, pad_id=tokenizer.pad_token_id, batch_size=cfg.per_device_eval_batch_size
    )
    if before:
        emitter.metrics(0, {f"eval_{k}": v for k, v in before.items()})

    with atomic_output(cfg.output_dir, overwrite=cfg.overwrite_output_dir) as tmp:
        args = RewardConfig(
            **training_arguments(cfg, tmp),
            max_length=None,  # pairs are already cut to max_length above
            center_rewards_coefficient=cfg.center_rewards_coefficient,
        )
        trainer_class, collator = RewardTrainer, None
        if soft:
            trainer_class, collator_class = soft_label_trainer_classes()
            collator = collator_class(
                pad_token_id=tokenizer.pad_token_id, pad_to_multiple_of=args.pad_to_multiple_of
            )
        trainer = trainer_class(
            model=model,
            args=args,
            data_collator=collator,
            train_dataset=Dataset.from_list(train_tok),
            processing_class=tokenizer,
            callbacks=[trainer_callback(emitter)],
            peft_config=peft_config,
        )
        if cfg.use_lora:  # TRL turned the adapters' dropout off with the model's
            restore_lora_dropout(trainer.model, cfg.lora_dropout)
        # looked up before training: a run resumed into its own output writes newer checkpoints there
        resumed_from = resumed(cfg)
        result = train(trainer, cfg, record)
        # Training left the model's forward wrapped in accelerate's autocast (bf16): unwrapped, the
        # figures after training read it in fp32, as before training and as the saved model reads.
        model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
        model = model.merge_and_unload() if cfg.use_lora else model
        after = pair_metrics(
            model, eval_tok, pad_id=tokenizer.pad_token_id, batch_size=cfg.per_device_eval_batch_size
        )
        final = {
            "train_loss": result.training_loss,
            "train_pairs": len(train_tok),
            "dropped_identical_pairs": data.dropped_identical,
            "dropped_cut_identical_pairs": cut_identical,
            "dropped_tie_pairs": data.dropped_ties,
            "used_margin": use_margin,
            **resumed_from,
            "used_soft_labels": soft,
            **({"eval_skipped": data.eval_skipped} if data.eval_skipped else {}),
            **{f"eval_{k}": v for k, v in after.items()},
            **{f"eval_before_{k}": v for k, v in before.items() if k != "pairs"},
            "seconds": timer.seconds,
        }
        emitter.metrics(result.global_step, {f"eval_{k}": v for k, v in after.items()})
        save_trained(trainer, model, tokenizer, tmp, merged=cfg.use_lora)
        write_run_record(tmp, "reward", cfg.as_dict(), final)
    final["output_dir"] = cfg.output_dir
    return emitter.final(final)
