"""PPO with a learned reward model, on torch + transformers + accelerate (TRL no longer ships PPO).

The algorithm (RLHF PPO as in Ziegler et al. 2019 / Ouyang et al. 2022, "N implementation details
of RLHF with PPO", Huang et al. 2024), one iteration per batch of ``rollout_batch_size`` prompts:

1. Rollout. The policy samples a response to each prompt (``temperature`` > 0, at most
   ``max_new_tokens``; ``top_k`` and ``top_p`` must stay 0 and 1: no truncation, since the
   log-probs are those of the whole distribution, ``PPORunConfig.validate``). Every sampling
   setting is passed to ``generate`` explicitly (``sampling_kwargs``), so nothing comes from the
   checkpoint's generation_config (Qwen's repetition_penalty/top_k/top_p) and the log-probs below
   are those of the distribution that really sampled. Responses end at the first of the end ids the model declares
   (``core.formatting.stop_token_ids``: EOS, generation_config's eos_token_id list, the template's
   end-of-turn; or ``stop_token``); later tokens are padding; the end token is part of the response
   so the policy learns to end. The batch is trimmed to its longest response.
2. Score. The reward model (``AutoModelForSequenceClassification``, ``num_labels=1``, e.g. a
   ``reward`` run's output) scores the decoded response through
   ``core.formatting.reward_input_ids``, the function reward training uses, so it reads the same
   tokens and final end token as in training. A response that never ends (no end id within
   ``max_new_tokens``) gets no end token and loses ``missing_eos_penalty``; scores are clipped to
   +-``reward_clip`` and, with ``normalize_rewards``, whitened over the batch of all processes.
3. Per-token rewards. The frozen reference policy (the starting model) gives log-probs; each token
   gets ``-kl_coef * kl_t`` with ``kl_t = log pi(y_t) - log pi_ref(y_t)`` ("k1", an unbiased estimate
   of the KL) or ``(r - 1) - log r`` with ``r = pi_ref / pi`` ("k3", never negative), and the last
   token of the response also gets the score. ``whiten_rewards`` normalises them per batch.
4. Advantages. A value model estimates V(s_t) per token; GAE with ``gamma`` and ``lam`` gives the
   advantages A_t and the returns R_t = A_t + V_t. Advantages are whitened (zero mean, unit variance
   over the batch's response tokens).
5. Optimisation. ``ppo_epochs`` passes over the rollout in shuffled minibatches of
   ``mini_batch_size``: clipped policy loss ``max(-A r_t, -A clip(r_t, 1 +- cliprange))`` with the
   probability ratio r_t against the rollout's log-probs, plus ``vf_coef`` times the clipped value
   loss ``0.5 max((V - R)^2, (V_clip - R)^2)`` with ``V_clip`` within ``cliprange_value`` of the
   rollout's values; gradients clipped to ``max_grad_norm``. A mini-batch is run in micro-batches of
   ``per_device_train_batch_size`` with gradient accumulation; the learning rate follows
   ``lr_scheduler_type`` after ``warmup_steps`` over all optimiser steps.

Memory: only the response positions' logits are computed (``logits_to_keep``); the chosen token's
log-prob is its logit minus a row-wise logsumexp (``selective_log_softmax``), with no full
vocabulary log-softmax in the graph; the entropy is logged from a graph-free pass; rollout forwards
run in micro-batches of ``per_device_eval_batch_size``.

Precision: the policy (and value head/model) are fp32 master weights whatever the checkpoint's
dtype (bf16 compute through autocast when ``bf16``); the frozen reference and reward models run in
bf16 under ``bf16``, else fp32. The saved policy is fp32 and keeps the checkpoint's own
generation_config.

The value model is a linear head on the policy's last hidden state (``value_model=""``: one trunk,
one optimiser; the value loss also shapes the trunk, weighted by ``vf_coef``; the zero-initialised
head has its own ``value_learning_rate``) or a separate token classification model started from the
reward model (``value_model="reward"``, as in InstructGPT; refused unless the reward model's
tokenizer is the policy's, since the value model reads the policy's token ids) or from
``value_model=PATH``.

Logged per iteration: ``reward`` (mean score), ``kl`` (mean summed KL per response), ``loss``,
``pg_loss``, ``vf_loss``, ``clipfrac``, ``approx_kl`` (policy change within the iteration),
``eos_rate``, ``response_length``, ``entropy``. Held-out prompts (``eval_prompts``, sampled with a
fixed seed) are scored before and after training: ``eval_reward`` and ``eval_kl`` (to the reference).

Checkpoints (``save_steps``): every ``save_steps`` iterations the whole training state goes to
``<output_dir>.checkpoints/checkpoint-N`` (accelerate's ``save_state``: policy and value weights,
optimiser, learning-rate schedule, every process's RNG; plus each process's place in its shuffled
prompt order and the logged history), ``trainer_state.json`` last, so a folder without it is not a
checkpoint. ``resume_from`` continues from one with the same settings and number of processes.

Multi-process: prompts are sharded over processes and gradients all-reduced by accelerate; the
iteration count comes from the global batch (``iteration_count``), so every process runs the same
number of collective steps whatever the prompt count. Layouts (``training/accelerate/*.yaml``, see
``training.runners.launch``): DDP and DeepSpeed ZeRO-2; ZeRO-3 gathers the policy's partitioned
parameters to sample and the full state dict to save, and partitions the frozen models like the
policy; FSDP is refused.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.batches import padded_batch
from core.formatting import generation_prompt_ids, response_reward_input, stop_token_ids
from training.runners.configs import PPORunConfig
from training.runners.data import check_rl_prompts_render, load_prompt_splits
from training.runners.dpo import load_causal_lm
from training.runners.models import (
    CHECKPOINT_PREFIX,
    CheckpointMismatch,
    as_shipped,
    atomic_output,
    check_not_past_the_end,
    check_tokenizer_fits,
    checkpoint_record,
    checkpoint_step,
    checkpoints_dir,
    load_tokenizer,
    resolve_bf16,
    resolve_use_cpu,
    resume_checkpoint,
    write_checkpoint_record,
    write_run_record,
)
from training.runners.protocol import Emitter, ModelError, RunnerError, Timer
from training.runners.reward import load_reward_model


@dataclass
class Rollout:
    """One batch of sampled responses and everything PPO needs about them (tensors, batch first)."""

    query: Any  # (B, Q) left-padded prompt ids
    qmask: Any  # (B, Q) attention mask of the prompts
    response: Any  # (B, T) response ids, padding after the first EOS
    mask: Any  # (B, T) 1 for response tokens (EOS included)
    logprobs: Any  # (B, T) under the rollout policy
    ref_logprobs: Any  # (B, T) under the reference policy
    values: Any  # (B, T)
    scores: Any  # (B,)
    has_eos: Any  # (B,) bool
    raw_scores: Any  # (B,) before normalize_rewards


def masked_mean(x, mask, dim=None):
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_whiten(x, mask, shift_mean: bool = True):
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    out = (x - mean) * (var + 1e-8).rsqrt()
    if not shift_mean:
        out = out + mean
    return out * mask


def gae(rewards, values, mask, *, gamma: float, lam: float):
    """Generalised advantage estimation over masked response tokens; returns (advantages, returns)."""
    import torch

    T = rewards.shape[1]
    last = torch.zeros_like(rewards[:, 0])
    adv = torch.zeros_like(rewards)
    for t in reversed(range(T)):
        next_v = values[:, t + 1] * mask[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_v - values[:, t]
        last = delta + gamma * lam * last * (mask[:, t + 1] if t + 1 < T else 0)
        adv[:, t] = last * mask[:, t]
    return adv, (adv + values) * mask


def optimiser_groups(model, cfg: PPORunConfig) -> list[dict[str, Any]]:
    """AdamW's parameter groups for the PPO model: the policy's tensors at ``learning_rate``, the
    value head's (or value model's) at ``value_learning_rate``; each split into those decayed by
    ``weight_decay`` and the biases and norms, which are not (transformers' own rule, the one the
    reward, DPO, RLOO and GRPO runs' Trainer applies)."""
    from transformers import Trainer

    decayed = set(Trainer.get_decay_parameter_names(None, model))  # reads only the model
    groups = []
    for value in (False, True):
        named = [(n, p) for n, p in model.named_parameters() if n.startswith("policy.") != value]
        lr = cfg.value_learning_rate if value else cfg.learning_rate
        for decay in (True, False):
            params = [p for n, p in named if (n in decayed) == decay]
            if params:
                groups.append(
                    {"params": params, "lr": lr, "weight_decay": cfg.weight_decay if decay else 0.0}
                )
    return groups


class PolicyWithValueHead:
    """Builds the policy (+ optional value head on its trunk) as one ``nn.Module``."""

    @staticmethod
    def build(policy, value_model=None):
        from torch import nn

        class _PolicyValue(nn.Module):
            def __init__(self, policy, value_model):
                super().__init__()
                self.policy = policy
                self.value_model = value_model
                if value_model is None:
                    hidden = policy.config.get_text_config().hidden_size
                    self.v_head = nn.Linear(hidden, 1)
                    nn.init.zeros_(self.v_head.weight)
                    nn.init.zeros_(self.v_head.bias)

            def forward(self, input_ids, attention_mask, position_ids, n_response: int):
                """(logits predicting the last ``n_response`` tokens, values V(s_t) at those states)."""
                logits, out = _causal_logits(
                    self.policy, input_ids, attention_mask, n_response, hidden=self.value_model is None
                )
                if self.value_model is None:
                    hidden = out.hidden_states[-1][:, -(n_response + 1) : -1]
                    values = self.v_head(hidden.to(self.v_head.weight.dtype)).squeeze(-1)
                else:
                    values = (
                        self.value_model(
                            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids
                        )
                        .logits[:, -(n_response + 1) : -1]
                        .squeeze(-1)
                    )
                return logits, values.float()

        return _PolicyValue(policy, value_model)


def _disable_dropout(model) -> None:
    from torch import nn

    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0


def _positions(mask):
    return (mask.cumsum(1) - 1).clamp(min=0)


def selective_log_softmax(logits, index):
    """``log_softmax(logits)[..., index]`` without a full-vocabulary log-softmax tensor in the graph.

    fp32/fp64: the chosen logit minus a row-by-row logsumexp (the graph keeps the logits, not a second
    (B, T, V) tensor). Lower precision: a row at a time in fp32 (logsumexp in bf16 loses too much).
    """
    import torch

    if logits.dtype in (torch.float32, torch.float64):
        picked = torch.gather(logits, -1, index.unsqueeze(-1)).squeeze(-1)
        lse = torch.stack([torch.logsumexp(row, dim=-1) for row in logits])
        return picked - lse
    rows = []
    for row_logits, row_index in zip(logits, index, strict=True):
        row = torch.log_softmax(row_logits.float(), dim=-1)
        rows.append(row.gather(-1, row_index.unsqueeze(-1)).squeeze(-1))
    return torch.stack(rows)


def entropy_from_logits(logits):
    """Per-position entropy, computed without a graph (it is only logged) and a row at a time."""
    import torch

    with torch.no_grad():
        out = []
        for row in logits:
            row = row.float()
            logp = torch.log_softmax(row, dim=-1)
            out.append(-(logp.exp() * logp).sum(-1))
        return torch.stack(out)


def _response_stats(logits, response, temperature: float, *, with_entropy: bool = False):
    """Log-probs (and, if asked, entropies) of ``response`` tokens under softmax(logits / T).

    ``logits`` are the T positions that predict the response tokens (shape (B, T, V)).
    """
    logits = logits / temperature
    logp = selective_log_softmax(logits, response)
    return logp, (entropy_from_logits(logits) if with_entropy else None)


def _accepts_logits_to_keep(model) -> bool:
    import inspect

    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _causal_logits(model, ids, attn, n_response: int, *, hidden: bool = False):
    """Forward ``model``; return (logits predicting the last ``n_response`` tokens, output)."""
    kwargs: dict[str, Any] = {
        "input_ids": ids,
        "attention_mask": attn,
        "position_ids": _positions(attn),
        "use_cache": False,
        "output_hidden_states": hidden,
    }
    if _accepts_logits_to_keep(model):
        kwargs["logits_to_keep"] = n_response + 1  # the prompt positions' logits are never needed
    out = model(**kwargs)
    return out.logits[:, -(n_response + 1) : -1], out


def end_token_ids(tokenizer, model, stop_token: str = "") -> list[int]:
    """Every id that ends a response: ``stop_token`` if set, else what ``core.formatting`` declares
    (the tokenizer's EOS, every ``generation_config.eos_token_id`` such as Llama-3's ``<|eot_id|>``,
    the template's end-of-turn token)."""
    if stop_token:
        if stop_token not in tokenizer.get_vocab():
            raise ModelError(f"stop_token {stop_token!r} is not a token of the policy's vocabulary.")
        return [tokenizer.convert_tokens_to_ids(stop_token)]
    ids = stop_token_ids(tokenizer, getattr(model, "generation_config", None))
    if not ids:
        raise ModelError(
            "The policy declares no end-of-sequence token (tokenizer EOS or generation_config "
            "eos_token_id); set stop_token to a token of its vocabulary."
        )
    return ids


def same_vocabulary(a, b) -> bool:
    """Whether two tokenizers map every token to the same id (so one's ids mean the same to the other)."""
    return len(a) == len(b) and a.get_vocab() == b.get_vocab()


class ValueModelMismatch(RunnerError):
    """A value model that would read the policy's token ids as other tokens: a config to change."""

    kind = "config"


def check_value_model_tokenizer(cfg: PPORunConfig, tokenizer, reward_tokenizer) -> None:
    """Refuse a value model (``value_model="reward"`` or a folder) whose tokenizer is not the
    policy's: the value model is fed the policy's ids (prompt + response), which another vocabulary
    reads as other tokens (Qwen's ids as BERT's ``[unused0]``...), so it would learn values of
    nonsense. A folder without a tokenizer of its own cannot be checked here: only its embedding
    table is (``check_tokenizer_fits``, when it loads)."""
    if not cfg.value_model:
        return
    if cfg.value_model == "reward":
        theirs_tok, what = reward_tokenizer, f"the reward model {cfg.reward_model!r}"
    else:
        try:
            theirs_tok = load_tokenizer(cfg.value_model)
        except ModelError:
            return
        what = f"the model {cfg.value_model!r}"
    if same_vocabulary(tokenizer, theirs_tok):
        return
    theirs = {i: tok for tok, i in theirs_tok.get_vocab().items()}
    example = "the vocabularies differ"
    for tok, i in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1]):
        if theirs.get(i) != tok:
            example = f"id {i} is {tok!r} to the policy but {theirs.get(i)!r} to the value model"
            break
    raise ValueModelMismatch(
        f"value_model={cfg.value_model!r} starts the value model from {what}, whose tokenizer "
        f"({len(theirs_tok)} tokens) is not the policy's ({len(tokenizer)} tokens; {example}): it would "
        'read the policy\'s token ids as other tokens. Use value_model="" (a value head on the policy) '
        "or a model trained from the policy's tokenizer."
    )


def sampling_kwargs(cfg: PPORunConfig, *, pad_id: int, stop_ids: list[int]) -> dict[str, Any]:
    """Every sampling setting passed explicitly: transformers fills what is not passed from the
    checkpoint's generation_config (Qwen ships repetition_penalty 1.05, top_k 20, top_p 0.8...), and
    PPO's log-probs assume plain softmax(logits / temperature) with only top_k/top_p as configured."""
    return {
        "max_new_tokens": cfg.max_new_tokens,
        "min_length": 0,  # a MinLength processor would forbid early end tokens
        "min_new_tokens": None,
        "do_sample": True,
        "num_beams": 1,
        "temperature": cfg.temperature,
        "top_k": cfg.top_k,  # 0: no truncation
        "top_p": cfg.top_p,
        "min_p": None,
        "top_h": None,
        "typical_p": 1.0,
        "epsilon_cutoff": 0.0,
        "eta_cutoff": 0.0,
        "repetition_penalty": 1.0,
        "no_repeat_ngram_size": 0,
        "bad_words_ids": None,
        "suppress_tokens": None,
        "begin_suppress_tokens": None,
        "renormalize_logits": False,
        "pad_token_id": pad_id,
        "eos_token_id": list(stop_ids),
    }


class PPORunner:
    def __init__(self, cfg: PPORunConfig, emitter: Emitter) -> None:
        import torch
        from accelerate import Accelerator

        from training.runners.launch import check_supported, distributed_backend

        self.cfg = cfg
        self.emitter = emitter
        self.backend = distributed_backend()
        check_supported("ppo", cfg, self.backend)
        use_cpu = resolve_use_cpu(cfg.use_cpu)
        self.bf16 = resolve_bf16(cfg.bf16, use_cpu)
        self.accelerator = Accelerator(
            cpu=use_cpu,
            mixed_precision="bf16" if self.bf16 else "no",
            gradient_accumulation_steps=cfg.optimiser_batch // cfg.micro_batch,
        )
        self.device = self.accelerator.device
        torch.manual_seed(cfg.seed + self.accelerator.process_index)
        random.seed(cfg.seed)

        self.tokenizer = load_tokenizer(cfg.base_model)
        self.tokenizer.padding_side = "left"
        self.reward_tokenizer = load_tokenizer(cfg.reward_model)
        self.reward_tokenizer.padding_side = "right"
        check_value_model_tokenizer(cfg, self.tokenizer, self.reward_tokenizer)  # before any model loads

        # Trainable weights are fp32 masters whatever the checkpoint's dtype (AdamW steps on bf16
        # parameters lose updates below bf16's resolution); bf16 compute comes from autocast.
        policy = load_causal_lm(cfg.base_model, self.tokenizer).float()
        self.saved_generation_config = copy.deepcopy(policy.generation_config)
        self.stop_ids = end_token_ids(self.tokenizer, policy, cfg.stop_token)
        _disable_dropout(policy)  # rollout and update log-probs must agree (ratio 1 before any step)
        if cfg.gradient_checkpointing:
            policy.gradient_checkpointing_enable()
        frozen_dtype = torch.bfloat16 if self.bf16 else torch.float32
        self.ref = load_causal_lm(cfg.base_model, self.tokenizer, role="reference", trainable=False)
        self.ref = self.ref.to(frozen_dtype).eval()
        self.ref.requires_grad_(False)

        self.reward = load_reward_model(cfg.reward_model, self.reward_tokenizer, trainable=False)
        self.reward = self.reward.to(frozen_dtype).eval()
        self.reward.requires_grad_(False)

        value_model = None
        if cfg.value_model:
            from transformers import AutoModelForTokenClassification

            path = cfg.reward_model if cfg.value_model == "reward" else cfg.value_model
            try:
                value_model = AutoModelForTokenClassification.from_pretrained(path, num_labels=1)
            except (OSError, ValueError, KeyError) as exc:
                raise ModelError(f"Cannot load the value model {path!r}: {exc}") from exc
            check_tokenizer_fits(self.tokenizer, value_model, path)
            value_model = value_model.float()
            _disable_dropout(value_model)
        model = PolicyWithValueHead.build(policy, value_model)
        optimizer = torch.optim.AdamW(optimiser_groups(model, cfg), eps=1e-5)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        # after prepare: under ZeRO-3 the DeepSpeed config's "auto" values are filled in by then
        self.ref = self._place_frozen(self.ref)
        self.reward = self._place_frozen(self.reward)
        self.scheduler = None

    def _place_frozen(self, model):
        """Frozen models: on the device (DDP, ZeRO-2), or partitioned like the policy (ZeRO-3)."""
        if self.backend != "zero3":
            return model.to(self.device)
        import deepspeed  # checked by check_supported

        ds = copy.deepcopy(self.accelerator.state.deepspeed_plugin.deepspeed_config)
        ds.pop("optimizer", None)
        ds.pop("scheduler", None)
        ds["train_micro_batch_size_per_gpu"] = self.cfg.per_device_eval_batch_size
        ds["gradient_accumulation_steps"] = 1
        ds.pop("train_batch_size", None)
        engine, *_ = deepspeed.initialize(model=model, config=ds)
        engine.eval()
        return engine

    @contextlib.contextmanager
    def _policy_for_generation(self):
        """The unwrapped policy with full weights (ZeRO-3 gathers the partitioned parameters)."""
        unwrapped = self.accelerator.unwrap_model(self.model)
        if self.backend == "zero3":
            import deepspeed

            with deepspeed.zero.GatheredParameters(list(self.model.parameters()), modifier_rank=None):
                yield unwrapped.policy
        else:
            yield unwrapped.policy

    def set_schedule(self, optimiser_steps: int) -> None:
        """Warmup then ``lr_scheduler_type`` over ``optimiser_steps`` (stepped once per optimiser step)."""
        from transformers import get_scheduler

        cfg = self.cfg
        warmup = cfg.warmup_steps if cfg.warmup_steps >= 1 else math.ceil(cfg.warmup_steps * optimiser_steps)
        self.scheduler = get_scheduler(
            cfg.lr_scheduler_type,
            self.optimizer,
            num_warmup_steps=int(warmup),
            num_training_steps=max(optimiser_steps, 1),
        )
        self.accelerator.register_for_checkpointing(self.scheduler)  # saved with the state

    # --- checkpoints ------------------------------------------------------------------------------

    def save_checkpoint(self, iteration: int, loop: dict[str, Any], record: dict[str, Any]) -> None:
        """The training state after ``iteration`` (every process calls it: saving is collective),
        ``loop`` being this process's place in the prompts, with the run's ``record``
        (``checkpoint_record``); keeps the newest ``save_total_limit``."""
        acc, cfg = self.accelerator, self.cfg
        root = checkpoints_dir(cfg.output_dir)
        folder = root / f"{CHECKPOINT_PREFIX}{iteration}"
        acc.save_state(str(folder), safe_serialization=True)
        (folder / f"prefhub_loop_{acc.process_index}.json").write_text(json.dumps(loop), encoding="utf-8")
        acc.wait_for_everyone()
        if acc.is_main_process:
            write_checkpoint_record(folder, record)
            state = {"global_step": iteration, "num_processes": acc.num_processes}
            (folder / "trainer_state.json").write_text(json.dumps(state), encoding="utf-8")
            whole = sorted((step, p) for p in root.iterdir() if (step := checkpoint_step(p)) is not None)
            for _, old in whole[: -cfg.save_total_limit]:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()

    def load_checkpoint(self, folder: Path) -> tuple[int, dict[str, Any]]:
        """Restore the state saved in ``folder``: (its iteration, this process's loop state)."""
        acc = self.accelerator
        state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
        if state.get("num_processes", 1) != acc.num_processes:
            raise RunnerError(
                f"resume_from: {folder} was saved by {state.get('num_processes', 1)} processes; resume it "
                f"with as many (this run has {acc.num_processes})."
            )
        try:
            acc.load_state(str(folder))
        except ValueError as exc:  # torch's optimizer.load_state_dict on another group layout
            if "parameter group" not in str(exc):
                raise
            raise CheckpointMismatch(
                f"resume_from: {folder} holds an optimiser laid out otherwise ({exc}): it was written "
                "by an earlier version, whose weight decay covered biases and norms too. Start the run "
                "again without resume_from."
            ) from exc
        loop = json.loads((folder / f"prefhub_loop_{acc.process_index}.json").read_text(encoding="utf-8"))
        return int(state["global_step"]), loop

    # --- rollouts ---------------------------------------------------------------------------------

    def _query_batch(self, prompts: list[Any]):
        # cut from the start of the content, keeping the BOS and the generation prompt: the rule the
        # reward input (core.formatting.sequence_ids) cuts the same prompt by
        max_prompt = max(self.cfg.max_length - self.cfg.max_new_tokens, 1)
        ids = [generation_prompt_ids(self.tokenizer, p, max_prompt) for p in prompts]
        query, qmask = padded_batch(ids, self.tokenizer.pad_token_id, left=True)
        return query.to(self.device), qmask.to(self.device)

    def _generate(self, query, qmask, *, generator_seed: int | None = None):
        import torch

        kwargs = sampling_kwargs(self.cfg, pad_id=self.tokenizer.pad_token_id, stop_ids=self.stop_ids)
        state = None
        if generator_seed is not None:
            state = torch.random.get_rng_state()
            cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
            torch.manual_seed(generator_seed)
        with self._policy_for_generation() as policy:
            was_training = policy.training
            policy.eval()
            with torch.no_grad(), self.accelerator.autocast():
                out = policy.generate(input_ids=query, attention_mask=qmask, **kwargs)
            if was_training:
                policy.train()
        if state is not None:
            torch.random.set_rng_state(state)
            if cuda_state is not None:
                torch.cuda.set_rng_state_all(cuda_state)
        response = out[:, query.shape[1] :]
        stops = torch.tensor(self.stop_ids, device=response.device)
        is_stop = torch.isin(response, stops)
        has_eos = is_stop.any(1)
        first = torch.where(
            has_eos, is_stop.float().argmax(1), torch.full_like(has_eos, response.shape[1], dtype=torch.long)
        )
        idx = torch.arange(response.shape[1], device=response.device).unsqueeze(0)
        mask = (idx <= first.unsqueeze(1)).long()
        # trimmed to the longest actual response (the end token included), not max_new_tokens
        width = max(int(mask.sum(1).max()), 1)
        response, mask = response[:, :width], mask[:, :width]
        response = torch.where(mask.bool(), response, torch.full_like(response, self.tokenizer.pad_token_id))
        return response, mask, has_eos

    def _score(self, prompts: list[Any], query, qmask, response, mask, has_eos):
        """Raw reward-model scores (missing-EOS penalty and clipping applied)."""
        import torch

        from training.services.evaluation import score_sequences

        seqs = [
            self._reward_input(prompts[i], response[i][mask[i].bool()].tolist()) for i in range(len(prompts))
        ]
        scores = torch.tensor(
            score_sequences(
                self.reward,
                seqs,
                pad_id=self.reward_tokenizer.pad_token_id,
                batch_size=self.cfg.per_device_eval_batch_size,
            ),
            device=self.device,
        )
        if self.cfg.missing_eos_penalty:
            scores = torch.where(has_eos, scores, scores - self.cfg.missing_eos_penalty)
        return scores.clamp(-self.cfg.reward_clip, self.cfg.reward_clip)

    def _reward_input(self, prompt: Any, resp_ids: list[int]) -> list[int]:
        """The reward model's input ids for (prompt, sampled response): ``response_reward_input``
        (a response that never ended does not get the end token, and loses ``missing_eos_penalty``)."""
        ids, _ = response_reward_input(
            self.tokenizer, self.reward_tokenizer, self.stop_ids, prompt, resp_ids, self.cfg.max_length
        )
        return ids

    def _normalise(self, scores):
        """Whiten scores over the whole batch (all processes)."""
        everything = self.accelerator.gather(scores.detach().float())
        std = everything.std() if everything.numel() > 1 else everything.new_tensor(1.0)
        return (scores - everything.mean()) / (std + 1e-8)

    def _forward(self, model, query, qmask, response, mask, *, with_entropy: bool = False):
        import torch

        ids = torch.cat([query, response], dim=1)
        attn = torch.cat([qmask, mask], dim=1)
        logits, values = model(ids, attn, _positions(attn), response.shape[1])
        logp, entropy = _response_stats(logits, response, self.cfg.temperature, with_entropy=with_entropy)
        return logp, values, entropy

    def _ref_logprobs(self, query, qmask, response, mask):
        import torch

        ids = torch.cat([query, response], dim=1)
        attn = torch.cat([qmask, mask], dim=1)
        logits, _ = _causal_logits(self.ref, ids, attn, response.shape[1])
        logp, _ = _response_stats(logits.float(), response, self.cfg.temperature)
        return logp

    def _chunks(self, n: int, size: int):
        return [slice(i, min(i + size, n)) for i in range(0, n, size)]

    def rollout(self, prompts: list[Any]) -> Rollout:
        import torch

        query, qmask = self._query_batch(prompts)
        response, mask, has_eos = self._generate(query, qmask)
        logprobs, values, ref_logprobs = [], [], []
        with torch.no_grad(), self.accelerator.autocast():
            for sl in self._chunks(len(prompts), self.cfg.per_device_eval_batch_size):
                lp, v, _ = self._forward(self.model, query[sl], qmask[sl], response[sl], mask[sl])
                logprobs.append(lp.float())
                values.append(v.float())
                ref_logprobs.append(self._ref_logprobs(query[sl], qmask[sl], response[sl], mask[sl]))
            raw = self._score(prompts, query, qmask, response, mask, has_eos)
        scores = self._normalise(raw) if self.cfg.normalize_rewards else raw
        maskf = mask.float()
        return Rollout(
            query,
            qmask,
            response,
            maskf,
            torch.cat(logprobs) * maskf,
            torch.cat(ref_logprobs) * maskf,
            torch.cat(values) * maskf,
            scores,
            has_eos,
            raw,
        )

    def kl_per_token(self, logprobs, ref_logprobs):
        if self.cfg.kl_estimator == "k3":
            log_ratio = ref_logprobs - logprobs
            return log_ratio.exp() - 1 - log_ratio
        return logprobs - ref_logprobs

    # --- optimisation -----------------------------------------------------------------------------

    def step(self, ro: Rollout) -> dict[str, float]:
        import torch

        cfg = self.cfg
        mask = ro.mask
        kl = self.kl_per_token(ro.logprobs, ro.ref_logprobs) * mask
        rewards = -cfg.kl_coef * kl
        last = (mask.sum(1).long() - 1).clamp(min=0)
        rewards[torch.arange(rewards.shape[0]), last] += ro.scores
        if cfg.whiten_rewards:
            rewards = masked_whiten(rewards, mask, shift_mean=False)
        advantages, returns = gae(rewards, ro.values, mask, gamma=cfg.gamma, lam=cfg.lam)
        advantages = masked_whiten(advantages, mask)

        B = ro.response.shape[0]
        mini, micro = cfg.optimiser_batch, cfg.micro_batch
        stats: dict[str, list[float]] = {
            k: [] for k in ("loss", "pg_loss", "vf_loss", "clipfrac", "approx_kl", "entropy")
        }
        self.model.train()
        for _ in range(cfg.ppo_epochs):
            order = torch.randperm(B, device=mask.device)
            for start in range(0, B, mini):
                mb = order[start : start + mini]
                parts = [mb[i : i + micro] for i in range(0, len(mb), micro)]
                for idx in parts:
                    m = mask[idx]
                    # accelerate counts the micro-batches: gradients sync (DDP) and the optimiser and
                    # DeepSpeed engine step only on the last one of each mini-batch; the loss is
                    # divided by the number of micro-batches (all of the same size) in backward.
                    with self.accelerator.accumulate(self.model), self.accelerator.autocast():
                        logp, vpred, entropy = self._forward(
                            self.model,
                            ro.query[idx],
                            ro.qmask[idx],
                            ro.response[idx],
                            m.long(),
                            with_entropy=True,
                        )
                        logp = logp.float()
                        old_logp, old_v, adv, ret = (
                            ro.logprobs[idx],
                            ro.values[idx],
                            advantages[idx],
                            returns[idx],
                        )
                        log_ratio = (logp - old_logp) * m
                        ratio = log_ratio.exp()
                        pg1 = -adv * ratio
                        pg2 = -adv * ratio.clamp(1 - cfg.cliprange, 1 + cfg.cliprange)
                        pg_loss = masked_mean(torch.max(pg1, pg2), m)
                        v_clipped = old_v + (vpred - old_v).clamp(-cfg.cliprange_value, cfg.cliprange_value)
                        vf_loss = 0.5 * masked_mean(torch.max((vpred - ret) ** 2, (v_clipped - ret) ** 2), m)
                        loss = pg_loss + cfg.vf_coef * vf_loss
                        self.accelerator.backward(loss)
                        if self.accelerator.sync_gradients and cfg.max_grad_norm:
                            self.accelerator.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                        self.optimizer.step()  # a no-op until the mini-batch's last micro-batch
                        if self.accelerator.sync_gradients and self.scheduler is not None:
                            self.scheduler.step()
                        self.optimizer.zero_grad(set_to_none=True)
                    with torch.no_grad():
                        stats["loss"].append(loss.item())
                        stats["pg_loss"].append(pg_loss.item())
                        stats["vf_loss"].append(vf_loss.item())
                        stats["clipfrac"].append(
                            masked_mean(((ratio - 1).abs() > cfg.cliprange).float(), m).item()
                        )
                        stats["approx_kl"].append(masked_mean(0.5 * log_ratio**2, m).item())
                        stats["entropy"].append(masked_mean(entropy, m).item())
        self.optimizer.zero_grad(set_to_none=True)
        out = {k: sum(v) / max(len(v), 1) for k, v in stats.items()}
        out.update(
            {
                "reward": self._mean(ro.raw_scores),
                "kl": self._mean(kl.sum(1)),
                "non_score_reward": self._mean((-cfg.kl_coef * kl).sum(1)),
                "eos_rate": self._mean(ro.has_eos.float()),
                "response_length": self._mean(mask.sum(1)),
                "lr": self.optimizer.param_groups[0]["lr"],
            }
        )
        return out

    def _mean(self, t) -> float:
        return self.accelerator.gather_for_metrics(t.detach().float().reshape(-1)).mean().item()

    # --- evaluation -------------------------------------------------------------------------------

    def evaluate(self, prompts: list[Any]) -> dict[str, float]:
        """Mean reward and KL to the reference on held-out prompts, sampled with a fixed seed."""
        import torch

        if not prompts:
            return {}
        scores, kls, eos = [], [], []
        bs = self.cfg.rollout_batch_size
        for i in range(0, len(prompts), bs):
            chunk = prompts[i : i + bs]
            query, qmask = self._query_batch(chunk)
            response, mask, has_eos = self._generate(query, qmask, generator_seed=self.cfg.seed + 7919 + i)
            with torch.no_grad(), self.accelerator.autocast():
                logp, ref = [], []
                for sl in self._chunks(len(chunk), self.cfg.per_device_eval_batch_size):
                    lp, _, _ = self._forward(self.model, query[sl], qmask[sl], response[sl], mask[sl])
                    logp.append(lp.float())
                    ref.append(self._ref_logprobs(query[sl], qmask[sl], response[sl], mask[sl]))
                s = self._score(chunk, query, qmask, response, mask, has_eos)
            kls.append((self.kl_per_token(torch.cat(logp), torch.cat(ref)) * mask).sum(1))
            scores.append(s)
            eos.append(has_eos.float())
        return {
            "reward": self._mean(torch.cat(scores)),
            "kl": self._mean(torch.cat(kls)),
            "eos_rate": self._mean(torch.cat(eos)),
        }

    def sample_texts(self, prompts: list[Any], n: int = 3) -> list[str]:
        query, qmask = self._query_batch(prompts[:n])
        response, mask, _ = self._generate(query, qmask, generator_seed=self.cfg.seed)
        return [
            self.tokenizer.decode(response[i][mask[i].bool()].tolist(), skip_special_tokens=True)
            for i in range(len(response))
        ]

    def save(self, out) -> None:
        """Save the policy (fp32) and tokenizer from every process's call: the state dict is gathered
        from all ranks (ZeRO-3 partitions), then written by the main process only."""
        state = self.accelerator.get_state_dict(self.model)
        if self.accelerator.is_main_process:
            policy = self.accelerator.unwrap_model(self.model).policy
            policy_state = {k[len("policy.") :]: v for k, v in state.items() if k.startswith("policy.")}
            policy.generation_config = self.saved_generation_config
            self.tokenizer.padding_side = "left"
            tokenizer = as_shipped(policy, self.tokenizer, self.cfg.base_model)
            policy.save_pretrained(str(out), state_dict=policy_state, safe_serialization=True)
            tokenizer.save_pretrained(str(out))


def run(cfg: PPORunConfig, emitter: Emitter | None = None) -> dict[str, Any]:
    emitter = emitter or Emitter(cfg.metrics_file)
    timer = Timer()
    train_prompts, eval_prompts, eval_skipped = load_prompt_splits(
        cfg, limit=min(cfg.eval_prompts, cfg.max_eval_rows)
    )
    check_rl_prompts_render(
        load_tokenizer(cfg.base_model), load_tokenizer(cfg.reward_model), train_prompts + eval_prompts, cfg
    )
    # a checkpoint another run wrote is refused before any model loads
    # the value function a checkpoint saves (a head on the policy trunk or a model of its own) does
    # not load into the other
    record = checkpoint_record(
        "ppo", cfg, len(train_prompts), rollout_batch_size=cfg.rollout_batch_size, value_model=cfg.value_model
    )
    checkpoint = resume_checkpoint(cfg.resume_from) if cfg.resume_from else None
    runner = PPORunner(cfg, emitter)
    acc = runner.accelerator
    # Each process takes its own share of the prompts.
    mine = train_prompts[acc.process_index :: acc.num_processes] or train_prompts
    before = runner.evaluate(eval_prompts)
    if before:
        emitter.metrics(0, {f"eval_{k}": v for k, v in before.items()})

    per_iter = cfg.rollout_batch_size
    iterations = iteration_count(cfg, len(train_prompts), acc.num_processes)
    runner.set_schedule(iterations * cfg.ppo_epochs * (per_iter // cfg.optimiser_batch))
    rng = random.Random(cfg.seed + acc.process_index)
    order: list[int] = []
    history: list[dict[str, float]] = []
    done = 0
    if checkpoint is not None:
        check_not_past_the_end(checkpoint, checkpoint_step(checkpoint), iterations)
        done, loop = runner.load_checkpoint(checkpoint)
        order, history = loop["order"], loop["history"]
        rng.setstate((loop["rng"][0], tuple(loop["rng"][1]), loop["rng"][2]))
        print(f"[prefhub] resuming from {checkpoint} (step {done})", flush=True)

    with atomic_output(cfg.output_dir, overwrite=cfg.overwrite_output_dir) as tmp:
        for it in range(done + 1, iterations + 1):
            batch = []
            while len(batch) < per_iter:
                if not order:
                    order = list(range(len(mine)))
                    rng.shuffle(order)
                batch.append(mine[order.pop()])
            ro = runner.rollout(batch)
            stats = runner.step(ro)
            history.append(stats)
            if it % max(cfg.logging_steps, 1) == 0 or it == 1 or it == iterations:
                emitter.metrics(it, stats)
            if cfg.eval_every and it % cfg.eval_every == 0 and it != iterations:
                emitter.metrics(it, {f"eval_{k}": v for k, v in runner.evaluate(eval_prompts).items()})
            if cfg.save_steps and it % cfg.save_steps == 0 and it != iterations:
                runner.save_checkpoint(
                    it, {"order": order, "history": history, "rng": rng.getstate()}, record
                )
        after = runner.evaluate(eval_prompts)
        emitter.metrics(iterations, {f"eval_{k}": v for k, v in after.items()})
        samples = runner.sample_texts(eval_prompts or train_prompts)
        tail = history[-max(1, len(history) // 5) :]
        final: dict[str, Any] = {
            "iterations": iterations,
            "episodes": iterations * per_iter * acc.num_processes,
            "train_reward_first": history[0]["reward"],
            "train_reward_last": sum(h["reward"] for h in tail) / len(tail),
            "train_kl_last": sum(h["kl"] for h in tail) / len(tail),
            **({"eval_skipped": eval_skipped} if eval_skipped else {}),
            **{f"eval_{k}": v for k, v in after.items()},
            **{f"eval_before_{k}": v for k, v in before.items()},
            "samples": samples,
            **({"resumed_from_step": done} if checkpoint is not None else {}),
            "seconds": timer.seconds,
        }
        acc.wait_for_everyone()
        runner.save(tmp)  # every process: gathering partitioned weights is collective
        write_run_record(tmp, "ppo", cfg.as_dict(), final)
    final["output_dir"] = cfg.output_dir
    return emitter.final(final)


def iteration_count(cfg: PPORunConfig, n_prompts: int, num_processes: int) -> int:
    """PPO iterations, from the GLOBAL batch so every process runs the same number (each iteration
    has collective operations: a process that stopped early would leave the others waiting forever)."""
    global_batch = cfg.rollout_batch_size * num_processes
    if cfg.max_steps > 0:
        return cfg.max_steps
    if cfg.total_episodes > 0:
        return max(1, math.ceil(cfg.total_episodes / global_batch))
    return max(1, math.ceil(n_prompts * cfg.num_train_epochs / global_batch))
