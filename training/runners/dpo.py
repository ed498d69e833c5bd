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

Targets: with the ``sigmoid`` loss (the DPO paper's, the default) each pair trains on the target
probability q that its chosen reply is the better one: its soft label p (``p_chosen``, an export's
``soft_labels``; 1 where absent) smoothed by ``label_smoothing`` eps, q = (1 - eps) p + eps (1 - p),
by the cross-entropy -(q log s(x) + (1 - q) log s(-x)), x = beta * (implicit-reward margin). TRL
1.16's sigmoid loss reads neither (it ignores ``label_smoothing``, which only its robust, EXO and AOT
losses use), so ``tokenized_trainer_class`` adds what it lacks: -log s(x) + (1 - q) x is that
cross-entropy, and TRL's loss is -log s(x), so the trainer adds the mean of (1 - q) x, with x read
from the very forward passes TRL's loss used (``_target_margins``). The other losses train every
pair as chosen over rejected: soft labels are then unused, and the log and ``used_soft_labels``
say so.

Tokens: TRL is handed rows we tokenised, never text. Each row's ids are ``data.dpo_ids``:
``core.formatting.split_ids`` of (prompt, chosen) and (prompt, rejected), the rule reward inputs and
PPO/RLOO/GRPO scoring follow (a conversation is the template's rendering split at the generation
prompt, each reply ending AT the family's end-of-turn token: not Qwen's/Gemma's newline after it,
nor Phi-3's newline and EOS, which TRL's own tokenising kept and trained the model to emit after its
stop token). TRL 1.16's ``DPOTrainer`` has no supported pre-tokenised input (it always tokenises
``prompt``/``chosen``/``rejected`` text in ``_prepare_dataset``), so ``tokenized_trainer_class``
overrides that one step to take ``prompt_ids``/``chosen_ids``/``rejected_ids`` columns as they are,
the columns of TRL's public ``DataCollatorForPreference`` (which adds no BOS or EOS); everything
else is TRL's. The held-out accuracy/margin read the very same id rows (``dpo_reference``).

Length (``max_length``): TRL's collator keeps the start of a too-long sequence and TRL drops,
uncounted, a row whose prompt alone fills ``max_length``. So each row's prompt is fitted first
(``data.fit_prompt``, checked on its ids): a long prompt loses its earliest turns, then the start of
its earliest remaining user turn (a plain prompt: the start of its text, at a word), keeping the
template's BOS, role headers and generation prompt, until prompt + the longer reply, end token
included, fit. A row whose reply does not fit even after an emptied prompt follows ``long_replies``:
"truncate" (the default, TRL's own behaviour) keeps the end of its prompt within half of
``max_length`` and cuts the end of the reply as TRL's keep-start truncation would (``data.cut_replies``,
before TRL sees it; counted as ``truncated_replies``); "drop" leaves it out (``dropped_too_long``;
held-out rows: ``*_eval``, left out of TRL's eval loss and of the accuracy/margin alike). No row left
is an error. A pair whose chosen and rejected ids are the same once fitted (a template that trims
what set them apart, Llama-3's and Gemma's ``| trim``; two long replies cut to the start they share)
teaches nothing and would be a held-out tie: it is dropped like a pair of identical text
(``dropped_identical_pairs``; held-out: ``dropped_identical_pairs_eval``). ``train_pairs`` is the
number of rows TRL's processed train dataset holds.
"""

from __future__ import annotations

import shutil
import sys
from typing import Any

from training.runners.configs import DPORunConfig
from training.runners.data import (
    cut_replies,
    dpo_ids,
    dpo_min_max_length,
    evaluation_skipped,
    fit_prompt,
    pair_run_start,
)
from training.runners.models import (
    atomic_output,
    check_tokenizer_fits,
    load_dtype,
    lora_config,
    require_causal_lm,
    restore_lora_dropout,
    wait_for_every_process,
    write_run_record,
)
from training.runners.protocol import (
    DataError,
    Emitter,
    ModelError,
    Timer,
    first_line,
    is_main_process,
    trainer_callback,
)
from training.runners.reward import checkpoint_record, resumed, save_trained, train, training_arguments
from training.services.evaluation import dpo_figures, dpo_reference


def load_causal_lm(path: str, tokenizer, *, role: str = "policy", trainable: bool = True):
    """A causal LM; ``trainable`` loads fp32 master weights whatever the checkpoint's dtype, a
    frozen one (a reference) keeps the checkpoint's dtype (``models.load_dtype``)."""
    from transformers import AutoModelForCausalLM

    require_causal_lm(path, role)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=load_dtype(trainable=trainable))
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"Cannot load {path!r} as a causal LM: {first_line(exc)}") from exc
    check_tokenizer_fits(tokenizer, model, path)
    return model


TRL_EVAL_FIGURES = ("eval_rewards/accuracies", "eval_rewards/margins")
#: What a fitted prompt cannot lose (``data.least_prompt``), as the refusals name it.
_LEAST_PROMPT = "(BOS, role headers, generation prompt; plain text: the BOS)"
TOKENIZED_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")
#: A row's target probability that its chosen reply is the better one (``pair_target``), when the
#: run trains on targets (``trains_on_targets``).
TARGET_COLUMN = "p_target"


def trains_on_targets(cfg: DPORunConfig, has_soft_labels: bool) -> bool:
    """Whether the sigmoid loss is given a target per pair: soft labels or label smoothing ask for it."""
    return cfg.loss_type == "sigmoid" and (has_soft_labels or cfg.label_smoothing > 0)


def pair_target(row: dict[str, Any], label_smoothing: float) -> float:
    """The probability that ``row``'s chosen reply is the better one: its soft label (1 where it has
    none), smoothed towards 0.5 by ``label_smoothing``."""
    p = float(row.get("p_chosen", 1.0))
    return (1 - label_smoothing) * p + label_smoothing * (1 - p)


def _with_targets(collate):
    """TRL's collator, with each row's ``TARGET_COLUMN`` kept as a float tensor (TRL's drops it)."""

    def collate_with_targets(examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = collate(examples)
        if examples and TARGET_COLUMN in examples[0]:
            import torch

            batch[TARGET_COLUMN] = torch.tensor([float(e[TARGET_COLUMN]) for e in examples])
        return batch

    return collate_with_targets


#: ``DPOTrainer._prepare_dataset``'s parameters in TRL 1.16 (requirements.txt pins it), checked
#: before it is overridden: a TRL that prepares datasets otherwise is refused, not half-used.
_PREPARE_DATASET_PARAMETERS = ["self", "dataset", "processing_class", "args", "dataset_name"]


def tokenized_trainer_class():
    """TRL's ``DPOTrainer`` taking rows we tokenised (``TOKENIZED_COLUMNS``, as ``dpo_ids`` builds
    them) as they are.

    TRL 1.16's ``DPOTrainer`` accepts only text: its ``_prepare_dataset`` always tokenises
    ``prompt``/``chosen``/``rejected`` (the chat template for a conversation, keeping what the
    template renders after the end-of-turn token; ``tokenizer(text)`` plus the EOS text for plain
    rows), unlike TRL's ``SFTTrainer`` and ``RewardTrainer``, which take pre-tokenised datasets. The
    override replaces that step alone: it takes the ids as given, adding nothing (no BOS, no EOS),
    and keeps TRL's own filter of rows whose prompt alone fills ``max_length`` (none of ours does:
    ``fit_prompt``). Batching (TRL's public ``DataCollatorForPreference``, whose input is exactly
    these columns), reference log-probs, loss and evaluation stay TRL's."""
    import inspect

    import trl
    from trl import DPOTrainer

    prepare = getattr(DPOTrainer, "_prepare_dataset", None)
    found = list(inspect.signature(prepare).parameters) if prepare is not None else None
    if found != _PREPARE_DATASET_PARAMETERS:
        raise ModelError(
            f"TRL {trl.__version__}'s DPOTrainer prepares datasets differently from TRL 1.16 (the pinned "
            "version), so it cannot be handed tokenised rows; install the version requirements.txt pins."
        )

    class TokenizedDPOTrainer(DPOTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.data_collator = _with_targets(self.data_collator)

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            if self._signature_columns is not None and TARGET_COLUMN not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, TARGET_COLUMN]

        def _compute_loss(self, model, inputs, return_outputs):
            target = inputs.pop(TARGET_COLUMN, None)
            if target is None:
                return super()._compute_loss(model, inputs, return_outputs)
            if self.loss_types != ["sigmoid"] or self.ld_alpha is not None or self.use_weighting:
                raise ModelError("Per-pair targets are trained with the plain sigmoid DPO loss only.")
            if self.f_divergence_type != "reverse_kl":
                raise ModelError("Per-pair targets are trained with the reverse-KL DPO loss only.")
            # TRL's loss runs the policy (then the reference, unless precomputed: the reference model, or
            # the policy with its LoRA adapters off) once each: their outputs, in that order.
            outputs: list[Any] = []
            watched = [self.model] + ([self.ref_model] if self.ref_model is not None else [])
            hooks = [m.register_forward_hook(lambda _m, _in, out: outputs.append(out)) for m in watched]
            try:
                result = super()._compute_loss(model, inputs, return_outputs)
            finally:
                for hook in hooks:
                    hook.remove()
            margins = self._target_margins(outputs, inputs)
            # TRL's sigmoid loss is mean(-log s(x)); -log s(x) + (1 - q) x = -(q log s(x) + (1 - q) log s(-x))
            extra = ((1 - target.to(margins.device, margins.dtype)) * margins).mean()
            return (result[0] + extra, result[1]) if return_outputs else result + extra

        def _target_margins(self, outputs: list[Any], inputs: dict[str, Any]):
            """x = beta * ((log pi - log pi_ref)(chosen) - (log pi - log pi_ref)(rejected)) per pair,
            summed over the completion tokens as TRL's loss sums them."""
            seq_len = inputs["completion_mask"].size(1) - 1
            logps = outputs[0].log_probs[:, -seq_len:].sum(dim=1)
            chosen, rejected = logps.chunk(2, dim=0)
            if self.precompute_ref_logps:
                ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
            else:
                ref_chosen, ref_rejected = outputs[1].log_probs[:, -seq_len:].sum(dim=1).chunk(2, dim=0)
            return self.beta * ((chosen - ref_chosen.to(chosen)) - (rejected - ref_rejected.to(rejected)))

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            missing = [c for c in TOKENIZED_COLUMNS if c not in dataset.column_names]
            if missing:
                raise ValueError(
                    f"The {dataset_name} dataset is not tokenised: no {', '.join(missing)} column."
                )
            if args.max_length is not None and args.truncation_mode == "keep_start":
                dataset = dataset.filter(lambda example: len(example["prompt_ids"]) < args.max_length)
            return dataset

    return TokenizedDPOTrainer


#: The folder of the run's temporary folder the datasets TRL is handed are kept in (removed at the end).
_DATASETS = "datasets"


def _shared_dataset(rows: list[dict[str, list[int]]], path, main: bool):
    """``rows`` as a ``datasets.Dataset`` saved at ``path`` (by the main process) and read from there,
    so that every process's copy has its files, and its cache, in that one folder; None for no rows."""
    from datasets import Dataset, load_from_disk

    if not rows:
        return None
    if main:
        Dataset.from_list(rows).save_to_disk(str(path))
    return load_from_disk(str(path))


def _honest(trl_eval: dict[str, Any], figures: dict[str, float]) -> dict[str, Any]:
    """TRL's eval loss with our accuracy/margin (ties half: 0.5 before training, not TRL's 0)."""
    kept = {k: v for k, v in trl_eval.items() if k not in TRL_EVAL_FIGURES}
    return {**kept, **{f"eval_{k}": v for k, v in figures.items()}}


def run(cfg: DPORunConfig, emitter: Emitter | None = None) -> dict[str, Any]:
    from trl import DPOConfig

    emitter = emitter or Emitter(cfg.metrics_file)
    timer = Timer()
    data, train_rows, eval_rows, tokenizer = pair_run_start(cfg, reward=False)
    trainer_class = tokenized_trainer_class()
    targets = trains_on_targets(cfg, data.has_soft_labels)
    if data.has_soft_labels and not targets:
        print(
            f"p_chosen (soft labels) of {len(data.rows)} pairs is not used: loss_type {cfg.loss_type!r} trains "
            "every pair as chosen over rejected (the sigmoid loss trains on soft labels).",
            file=sys.stderr,
        )
    elif targets:
        print(
            "Each pair trains on the probability q that its chosen reply is the better one, "
            "q = (1 - label_smoothing) p + label_smoothing (1 - p), p its soft label (p_chosen, 1 where "
            f"absent), label_smoothing={cfg.label_smoothing}: loss -(q log sigmoid(x) + (1 - q) log "
            "sigmoid(-x)), x beta times the implicit-reward margin.",
            file=sys.stderr,
        )

    def fit(rows, split: str) -> tuple[list[dict[str, list[int]]], list[tuple[int, int]], int, int]:
        """(the id rows TRL is given and the held-out figures read, for each row too long and dropped
        its least prompt and the least max_length that would keep it (``dpo_min_max_length``), how
        many had a reply cut: ``long_replies``, how many were dropped because their chosen and
        rejected ids are the same)."""
        given, needs, truncated, same = [], [], 0, 0
        for r in rows:
            fitted = fit_prompt(tokenizer, r, cfg.max_length)
            if fitted is None and cfg.long_replies == "truncate":
                fitted = fit_prompt(tokenizer, r, cfg.max_length, prompt_budget=cfg.max_length // 2)
            if fitted is not None:
                ids, cut = cut_replies(dpo_ids(tokenizer, fitted), cfg.max_length)
                if ids["chosen_ids"] == ids["rejected_ids"]:
                    same += 1  # no preference left to learn or score: dropped like identical text
                    continue
                if "p_chosen" in r:  # the held-out soft figures read it (evaluation.dpo_figures)
                    ids["p_chosen"] = float(r["p_chosen"])
                if targets:
                    ids[TARGET_COLUMN] = pair_target(r, cfg.label_smoothing)
                given.append(ids)
                truncated += cut
            else:
                needs.append(dpo_min_max_length(tokenizer, r, cfg.long_replies))
        if needs:
            print(
                f"Dropped {len(needs)} {split} pair(s) that do not fit max_length={cfg.max_length} tokens even with "
                f"the prompt cut to what the template renders around an empty turn {_LEAST_PROMPT}"
                + (
                    " within half of max_length"
                    if cfg.long_replies == "truncate"
                    else ", with the whole reply"
                )
                + ".",
                file=sys.stderr,
            )
        if truncated:
            print(
                f"{truncated} {split} pair(s) have a reply longer than max_length={cfg.max_length} tokens with its "
                "prompt: the prompt keeps its end within half of max_length and the end of the reply is cut.",
                file=sys.stderr,
            )
        if same:
            print(
                f"Dropped {same} {split} pair(s) whose chosen and rejected replies are the same tokens (the "
                "template trims what set them apart, or only the start they share fits max_length): "
                "they teach nothing.",
                file=sys.stderr,
            )
        return given, needs, truncated, same

    train_given, train_needs, truncated_train, same_train = fit(train_rows, "training")
    dropped_train = len(train_needs)
    if not train_given and not train_needs:
        raise DataError(
            f"No training pair left: the chosen and rejected replies of all {same_train} pairs are the same "
            f"tokens within max_length={cfg.max_length}."
        )
    if not train_given:
        least, needed = min(train_needs, key=lambda n: n[1])
        raise DataError(
            f"No training pair fits max_length={cfg.max_length}. A prompt is cut to no less than what the "
            f"template renders around an empty turn {_LEAST_PROMPT}: {least} tokens for the pair that fits "
            + (
                "soonest, which must be within half of max_length with room for one reply token "
                "(long_replies='truncate')."
                if cfg.long_replies == "truncate"
                else "soonest, followed by its whole reply, end token included (long_replies='drop')."
            )
            + f" Set max_length={needed} or more to keep a pair."
        )
    eval_given, eval_needs, truncated_eval, same_eval = (
        fit(eval_rows, "held-out") if eval_rows else ([], [], 0, 0)
    )
    dropped_eval = len(eval_needs)
    if eval_rows and not eval_given:  # every held-out pair dropped by the fitting above
        why = [f"{dropped_eval} too long for max_length={cfg.max_length}"] if dropped_eval else []
        if same_eval:
            why.append(f"{same_eval} with the same chosen and rejected tokens")
        data.eval_skipped = evaluation_skipped(len(eval_rows), why)
    record = checkpoint_record("dpo", cfg, len(train_given))
    import transformers

    transformers.set_seed(cfg.seed)
    model = load_causal_lm(cfg.base_model, tokenizer)
    peft_config = lora_config(cfg, "CAUSAL_LM", target_modules=cfg.lora_target_modules)

    with atomic_output(cfg.output_dir, overwrite=cfg.overwrite_output_dir) as tmp:
        args = DPOConfig(
            **training_arguments(cfg, tmp),
            beta=cfg.beta,
            loss_type=[cfg.loss_type],
            label_smoothing=cfg.label_smoothing,
            max_length=cfg.max_length,
            precompute_ref_log_probs=cfg.precompute_ref_log_probs,
        )
        # On disk, in the run's folder, rank 0's copy read by every rank: TRL caches precomputed
        # reference log-probs next to a dataset's files, and only rank 0 writes them. (An in-memory
        # dataset's cache is a per-process temporary folder, where rank 1 cannot find them.)
        with args.main_process_first(local=False, desc="the tokenised pairs"):
            train_ds = _shared_dataset(train_given, tmp / _DATASETS / "train", args.process_index == 0)
            eval_ds = _shared_dataset(eval_given, tmp / _DATASETS / "eval", args.process_index == 0)
        trainer = trainer_class(
            model=model,
            args=args,
            train_dataset=train_ds,
            eval_dataset=eval_ds,
            processing_class=tokenizer,
            # TRL's held-out accuracy/margin count ties as 0: ours (ties half) are charted instead
            callbacks=[trainer_callback(emitter, drop=TRL_EVAL_FIGURES)],
            peft_config=peft_config,
        )
        if cfg.use_lora:  # TRL turned the adapters' dropout off with the model's
            restore_lora_dropout(trainer.model, cfg.lora_dropout)
        # Held-out implicit-reward figures (training.services.evaluation), the same before and after, on
        # the very id rows TRL's eval loss reads; TRL's own eval loss is kept beside them.
        eval_kw = {"batch_size": cfg.per_device_eval_batch_size}
        # Both read before TRL's evaluate(), which may wrap the model's forward in accelerate's
        # autocast (bf16 with precompute_ref_log_probs): in fp32, as after training (below).
        reference = dpo_reference(model, tokenizer, eval_given, **eval_kw) if eval_given else {}
        if eval_given:
            figures = dpo_figures(model, tokenizer, eval_given, reference, beta=cfg.beta, **eval_kw)
        before = trainer.evaluate() if eval_ds is not None else {}
        if eval_given:
            before = _honest(before, figures)
            emitter.metrics(0, {f"eval_{k}": v for k, v in figures.items()})
        train_pairs = len(trainer.train_dataset)  # after TRL's own filtering
        if train_pairs != len(train_ds):
            print(
                f"TRL dropped {len(train_ds) - train_pairs} of {len(train_ds)} fitted training pairs.",
                file=sys.stderr,
            )
        # looked up before training: a run resumed into its own output writes newer checkpoints there
        resumed_from = resumed(cfg)
        result = train(trainer, cfg, record)
        after = trainer.evaluate() if eval_ds is not None else {}
        # Training left the model's forward wrapped in accelerate's autocast (bf16): unwrapped, the
        # held-out figures read it in fp32 as they read the reference and the model before training.
        model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
        model = model.merge_and_unload() if cfg.use_lora else model
        if eval_given:
            figures = dpo_figures(model, tokenizer, eval_given, reference, beta=cfg.beta, **eval_kw)
            after = _honest(after, figures)
            emitter.metrics(result.global_step, {f"eval_{k}": v for k, v in figures.items()})
        final: dict[str, Any] = {
            "train_loss": result.training_loss,
            "train_pairs": train_pairs,
            "dropped_too_long": dropped_train,
            "dropped_too_long_eval": dropped_eval,
            "truncated_replies": truncated_train,
            "truncated_replies_eval": truncated_eval,
            "dropped_identical_pairs": data.dropped_identical + same_train,
            "dropped_identical_pairs_eval": same_eval,
            "dropped_tie_pairs": data.dropped_ties,
            "precompute_ref_log_probs": cfg.precompute_ref_log_probs,
            "lora": cfg.use_lora,
            **resumed_from,
            "used_soft_labels": data.has_soft_labels and targets,  # unused: said in the log above
            **({"eval_skipped": data.eval_skipped} if data.eval_skipped else {}),
            **after,
            **{k.replace("eval_", "eval_before_", 1): v for k, v in before.items()},
            "seconds": timer.seconds,
        }
        save_trained(trainer, model, tokenizer, tmp, merged=cfg.use_lora, policy_of=cfg.base_model)
        write_run_record(tmp, "dpo", cfg.as_dict(), final)
        wait_for_every_process()
        if is_main_process():
            shutil.rmtree(tmp / _DATASETS, ignore_errors=True)
    final["output_dir"] = cfg.output_dir
    return emitter.final(final)
