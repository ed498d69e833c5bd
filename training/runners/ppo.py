"""PPO with a learned reward model, on torch + transformers + accelerate (TRL no longer ships PPO).

The algorithm (RLHF PPO as in Ziegler et al. 2019 / Ouyang et al. 2022, "N implementation details
of RLHF with PPO", Huang et al. 2024), one iteration per batch of ``rollout_batch_size`` prompts:

1. Rollout. The policy samples a response to each prompt (``temperature``, ``top_k``, ``top_p``,
   at most ``max_new_tokens``). Tokens after the first EOS (``stop_token``) are padding; the EOS
   itself is part of the response so the policy learns to end.
2. Score. The reward model (``AutoModelForSequenceClassification``, ``num_labels=1``, e.g. a
   ``reward`` run's output) scores prompt + response; with the same tokenizer it sees the exact
   tokens, otherwise the decoded text re-tokenised. A response that never ends (no EOS within
   ``max_new_tokens``) loses ``missing_eos_penalty``; scores are clipped to +-``reward_clip``.
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
   rollout's values; gradients clipped to ``max_grad_norm``.

The value model is a linear head on the policy's last hidden state (``value_model=""``: one trunk,
one optimiser; the value loss also shapes the trunk, weighted by ``vf_coef``) or a separate token
classification model (``value_model=PATH``, e.g. the reward model, as in InstructGPT).

Logged per iteration: ``reward`` (mean score), ``kl`` (mean summed KL per response), ``loss``,
``pg_loss``, ``vf_loss``, ``clipfrac``, ``approx_kl`` (policy change within the iteration),
``eos_rate``, ``response_length``, ``entropy``. Held-out prompts (``eval_prompts``, sampled with a
fixed seed) are scored before and after training: ``eval_reward`` and ``eval_kl`` (to the reference).

Multi-GPU: prompts are sharded over processes and gradients all-reduced by accelerate (DDP).
Sampling under DeepSpeed ZeRO-3/FSDP needs gathered weights and is not supported here.
"""

from __future__ import annotations

import math
import random
import shutil
from dataclasses import dataclass
from typing import Any

from training.runners.common import (
    Emitter,
    ModelError,
    Timer,
    atomic_output,
    check_tokenizer_fits,
    encode,
    is_conversational,
    load_prompts,
    load_tokenizer,
    prompt_ids,
    resolve_bf16,
    resolve_use_cpu,
    split_eval,
    write_json,
)
from training.runners.configs import PPORunConfig
from training.runners.dpo import load_causal_lm
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

            def forward(self, input_ids, attention_mask, position_ids):
                out = self.policy(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    position_ids=position_ids,
                    output_hidden_states=self.value_model is None,
                    use_cache=False,
                )
                if self.value_model is None:
                    hidden = out.hidden_states[-1]
                    values = self.v_head(hidden.to(self.v_head.weight.dtype)).squeeze(-1)
                else:
                    values = self.value_model(
                        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids
                    ).logits.squeeze(-1)
                return out.logits, values.float()

        return _PolicyValue(policy, value_model)


def _disable_dropout(model) -> None:
    from torch import nn

    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0


def _positions(mask):
    return (mask.cumsum(1) - 1).clamp(min=0)


def _response_stats(logits, response, temperature: float, q_len: int):
    """Log-probs (and entropies) of ``response`` tokens from full-sequence logits."""
    import torch

    logits = logits[:, q_len - 1 : -1].float() / max(temperature, 1e-6)
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = torch.gather(logp_all, 2, response.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


class PPORunner:
    def __init__(self, cfg: PPORunConfig, emitter: Emitter) -> None:
        import torch
        from accelerate import Accelerator

        self.cfg = cfg
        self.emitter = emitter
        use_cpu = resolve_use_cpu(cfg.use_cpu)
        self.accelerator = Accelerator(
            cpu=use_cpu,
            mixed_precision="bf16" if resolve_bf16(cfg.bf16, use_cpu) else "no",
            gradient_accumulation_steps=1,
        )
        self.device = self.accelerator.device
        torch.manual_seed(cfg.seed + self.accelerator.process_index)
        random.seed(cfg.seed)

        self.tokenizer = load_tokenizer(cfg.base_model)
        self.tokenizer.padding_side = "left"
        stop = cfg.stop_token or self.tokenizer.eos_token
        if stop is None or stop not in self.tokenizer.get_vocab():
            raise ModelError(
                "The policy tokenizer has no EOS token; set stop_token to a token of its vocabulary."
            )
        self.stop_id = self.tokenizer.convert_tokens_to_ids(stop)

        policy = load_causal_lm(cfg.base_model, self.tokenizer)
        _disable_dropout(policy)  # rollout and update log-probs must agree (ratio 1 before any step)
        if cfg.gradient_checkpointing:
            policy.gradient_checkpointing_enable()
        self.ref = load_causal_lm(cfg.base_model, self.tokenizer, role="reference").to(self.device).eval()
        self.ref.requires_grad_(False)

        self.reward_tokenizer = load_tokenizer(cfg.reward_model)
        self.reward_tokenizer.padding_side = "right"
        self.reward = load_reward_model(cfg.reward_model, self.reward_tokenizer).to(self.device).eval()
        self.reward.requires_grad_(False)
        self.same_tokenizer = self.reward_tokenizer.get_vocab() == self.tokenizer.get_vocab()

        value_model = None
        if cfg.value_model:
            from transformers import AutoModelForTokenClassification

            try:
                value_model = AutoModelForTokenClassification.from_pretrained(cfg.value_model, num_labels=1)
            except (OSError, ValueError) as exc:
                raise ModelError(f"Cannot load the value model {cfg.value_model!r}: {exc}") from exc
            check_tokenizer_fits(self.tokenizer, value_model, cfg.value_model)
            _disable_dropout(value_model)
        model = PolicyWithValueHead.build(policy, value_model)
        value_params = [p for n, p in model.named_parameters() if not n.startswith("policy.")]
        policy_params = [p for n, p in model.named_parameters() if n.startswith("policy.")]
        groups = [{"params": policy_params, "lr": cfg.learning_rate}]
        if value_params:
            groups.append({"params": value_params, "lr": cfg.value_learning_rate or cfg.learning_rate})
        optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay, eps=1e-5)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)

    # --- rollouts ---------------------------------------------------------------------------------

    def _query_batch(self, prompts: list[Any]):
        import torch

        max_prompt = max(self.cfg.max_length - self.cfg.max_new_tokens, 1)
        ids = [prompt_ids(self.tokenizer, p)[-max_prompt:] for p in prompts]
        width = max(len(x) for x in ids)
        pad = self.tokenizer.pad_token_id
        query = torch.full((len(ids), width), pad, dtype=torch.long)
        qmask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, x in enumerate(ids):
            query[i, width - len(x) :] = torch.tensor(x, dtype=torch.long)
            qmask[i, width - len(x) :] = 1
        return query.to(self.device), qmask.to(self.device)

    def _generate(self, query, qmask, *, generator_seed: int | None = None):
        import torch

        policy = self.accelerator.unwrap_model(self.model).policy
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.cfg.max_new_tokens,
            "do_sample": True,
            "temperature": max(self.cfg.temperature, 1e-6),
            "top_k": self.cfg.top_k or None,
            "top_p": self.cfg.top_p,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self.stop_id,
            "min_new_tokens": 0,
        }
        state = None
        if generator_seed is not None:
            state = torch.random.get_rng_state()
            cuda_state = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
            torch.manual_seed(generator_seed)
        was_training = policy.training
        policy.eval()
        with torch.no_grad():
            out = policy.generate(input_ids=query, attention_mask=qmask, **kwargs)
        if was_training:
            policy.train()
        if state is not None:
            torch.random.set_rng_state(state)
            if cuda_state is not None:
                torch.cuda.set_rng_state_all(cuda_state)
        response = out[:, query.shape[1] :]
        if response.shape[1] < self.cfg.max_new_tokens:  # every sequence ended early
            pad = torch.full(
                (response.shape[0], self.cfg.max_new_tokens - response.shape[1]),
                self.tokenizer.pad_token_id,
                dtype=response.dtype,
                device=response.device,
            )
            response = torch.cat([response, pad], dim=1)
        is_stop = response == self.stop_id
        has_eos = is_stop.any(1)
        first = torch.where(
            has_eos, is_stop.float().argmax(1), torch.full_like(has_eos, response.shape[1], dtype=torch.long)
        )
        idx = torch.arange(response.shape[1], device=response.device).unsqueeze(0)
        mask = (idx <= first.unsqueeze(1)).long()
        response = torch.where(mask.bool(), response, torch.full_like(response, self.tokenizer.pad_token_id))
        return response, mask, has_eos

    def _score(self, prompts: list[Any], query, qmask, response, mask, has_eos):
        import torch

        from training.runners.reward import score_sequences

        seqs = []
        for i, prompt in enumerate(prompts):
            resp_ids = response[i][mask[i].bool()].tolist()
            if self.same_tokenizer:
                q = query[i][qmask[i].bool()].tolist()
                seqs.append((q + resp_ids)[-self.cfg.max_length :])
            else:
                text = self.tokenizer.decode(
                    [t for t in resp_ids if t != self.stop_id], skip_special_tokens=True
                )
                completion = [{"role": "assistant", "content": text}] if is_conversational(prompt) else text
                ids = encode(self.reward_tokenizer, prompt, completion, self.cfg.max_length)
                if not bool(has_eos[i]) and ids and ids[-1] == self.reward_tokenizer.eos_token_id:
                    ids = ids[:-1]  # the policy did not end: do not pretend it did
                seqs.append(ids)
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

    def _forward(self, model, query, qmask, response, mask):
        import torch

        ids = torch.cat([query, response], dim=1)
        attn = torch.cat([qmask, mask], dim=1)
        logits, values = model(ids, attn, _positions(attn))
        logp, entropy = _response_stats(logits, response, self.cfg.temperature, query.shape[1])
        values = values[:, query.shape[1] - 1 : -1]
        return logp, values, entropy

    def _ref_logprobs(self, query, qmask, response, mask):
        import torch

        ids = torch.cat([query, response], dim=1)
        attn = torch.cat([qmask, mask], dim=1)
        with torch.no_grad():
            logits = self.ref(
                input_ids=ids, attention_mask=attn, position_ids=_positions(attn), use_cache=False
            ).logits
        logp, _ = _response_stats(logits, response, self.cfg.temperature, query.shape[1])
        return logp

    def rollout(self, prompts: list[Any]) -> Rollout:
        import torch

        query, qmask = self._query_batch(prompts)
        response, mask, has_eos = self._generate(query, qmask)
        with torch.no_grad():
            logprobs, values, _ = self._forward(self.model, query, qmask, response, mask)
            ref_logprobs = self._ref_logprobs(query, qmask, response, mask)
            scores = self._score(prompts, query, qmask, response, mask, has_eos)
        maskf = mask.float()
        return Rollout(
            query,
            qmask,
            response,
            maskf,
            logprobs * maskf,
            ref_logprobs * maskf,
            values * maskf,
            scores,
            has_eos,
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
        stats: dict[str, list[float]] = {
            k: [] for k in ("loss", "pg_loss", "vf_loss", "clipfrac", "approx_kl", "entropy")
        }
        self.model.train()
        for _ in range(cfg.ppo_epochs):
            order = torch.randperm(B, device=mask.device)
            for start in range(0, B, cfg.mini_batch_size):
                idx = order[start : start + cfg.mini_batch_size]
                m = mask[idx]
                logp, vpred, entropy = self._forward(
                    self.model, ro.query[idx], ro.qmask[idx], ro.response[idx], m.long()
                )
                old_logp, old_v, adv, ret = ro.logprobs[idx], ro.values[idx], advantages[idx], returns[idx]
                log_ratio = (logp - old_logp) * m
                ratio = log_ratio.exp()
                pg1 = -adv * ratio
                pg2 = -adv * ratio.clamp(1 - cfg.cliprange, 1 + cfg.cliprange)
                pg_loss = masked_mean(torch.max(pg1, pg2), m)
                v_clipped = old_v + (vpred - old_v).clamp(-cfg.cliprange_value, cfg.cliprange_value)
                vf_loss = 0.5 * masked_mean(torch.max((vpred - ret) ** 2, (v_clipped - ret) ** 2), m)
                loss = pg_loss + cfg.vf_coef * vf_loss
                self.optimizer.zero_grad(set_to_none=True)
                self.accelerator.backward(loss)
                if cfg.max_grad_norm:
                    self.accelerator.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                with torch.no_grad():
                    stats["loss"].append(loss.item())
                    stats["pg_loss"].append(pg_loss.item())
                    stats["vf_loss"].append(vf_loss.item())
                    stats["clipfrac"].append(
                        masked_mean(((ratio - 1).abs() > cfg.cliprange).float(), m).item()
                    )
                    stats["approx_kl"].append(masked_mean(0.5 * log_ratio**2, m).item())
                    stats["entropy"].append(masked_mean(entropy, m).item())
        out = {k: sum(v) / max(len(v), 1) for k, v in stats.items()}
        out.update(
            {
                "reward": self._mean(ro.scores),
                "kl": self._mean(kl.sum(1)),
                "non_score_reward": self._mean((-cfg.kl_coef * kl).sum(1)),
                "eos_rate": self._mean(ro.has_eos.float()),
                "response_length": self._mean(mask.sum(1)),
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
            with torch.no_grad():
                logp, _, _ = self._forward(self.model, query, qmask, response, mask)
                ref = self._ref_logprobs(query, qmask, response, mask)
                s = self._score(chunk, query, qmask, response, mask, has_eos)
            kls.append(((self.kl_per_token(logp, ref)) * mask).sum(1))
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


def run(cfg: PPORunConfig, emitter: Emitter | None = None) -> dict[str, Any]:
    emitter = emitter or Emitter(cfg.metrics_file)
    timer = Timer()
    prompts = load_prompts(cfg.dataset_path)
    eval_prompts = load_prompts(cfg.eval_dataset_path) if cfg.eval_dataset_path else None
    train_prompts, eval_prompts = split_eval(
        prompts, eval_rows=eval_prompts, fraction=cfg.eval_fraction, seed=cfg.seed, limit=cfg.eval_prompts
    )
    runner = PPORunner(cfg, emitter)
    acc = runner.accelerator
    # Each process takes its own share of the prompts.
    mine = train_prompts[acc.process_index :: acc.num_processes] or train_prompts
    before = runner.evaluate(eval_prompts)
    if before:
        emitter.metrics(0, {f"eval_{k}": v for k, v in before.items()})

    per_iter = cfg.rollout_batch_size
    if cfg.max_steps > 0:
        iterations = cfg.max_steps
    elif cfg.total_episodes > 0:
        iterations = math.ceil(cfg.total_episodes / (per_iter * acc.num_processes))
    else:
        iterations = max(1, math.ceil(len(mine) * cfg.num_train_epochs / per_iter))
    rng = random.Random(cfg.seed + acc.process_index)
    order: list[int] = []
    history: list[dict[str, float]] = []

    with atomic_output(cfg.output_dir, overwrite=cfg.overwrite_output_dir) as tmp:
        for it in range(1, iterations + 1):
            frac = 1.0 - (it - 1) / iterations
            if cfg.lr_scheduler_type == "linear":
                for group, base in zip(runner.optimizer.param_groups, _base_lrs(cfg), strict=False):
                    group["lr"] = base * frac
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
            **{f"eval_{k}": v for k, v in after.items()},
            **{f"eval_before_{k}": v for k, v in before.items()},
            "samples": samples,
            "seconds": timer.seconds,
        }
        acc.wait_for_everyone()
        if acc.is_main_process:
            policy = acc.unwrap_model(runner.model).policy
            policy.save_pretrained(str(tmp), safe_serialization=True)
            runner.tokenizer.padding_side = "left"
            runner.tokenizer.save_pretrained(str(tmp))
            shutil.rmtree(tmp / "checkpoints", ignore_errors=True)
            write_json(tmp / "prefhub_run.json", {"kind": "ppo", "config": cfg.as_dict(), "metrics": final})
    final["output_dir"] = cfg.output_dir
    return emitter.final(final)


def _base_lrs(cfg: PPORunConfig) -> list[float]:
    return [cfg.learning_rate, cfg.value_learning_rate or cfg.learning_rate]
