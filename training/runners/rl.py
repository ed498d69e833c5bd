"""RLOO and GRPO through TRL (``RLOOTrainer``/``GRPOTrainer``) with a trained reward model as the reward.

Both sample ``num_generations`` completions per prompt and use the group as the baseline (RLOO: the
mean reward of the other completions; GRPO: the group mean, divided by its standard deviation), with
``beta`` weighting a KL term towards the reference policy. The reward function is the reward model
(``AutoModelForSequenceClassification``, ``num_labels=1``, frozen, in its checkpoint's dtype) scoring
the ids ``core.formatting.reward_input_ids`` builds, the same as in reward training (TRL's own
reward-model path would re-tokenise without the end token). A completion cut off at
``max_completion_length`` (no end id among TRL's ``completion_ids``) is scored without the end token,
as PPO scores a response that never ended, and loses ``missing_eos_penalty``;
``mask_truncated_completions`` also leaves such completions out of the loss. Sampling settings are all explicit
(temperature only; no top-k/top-p/repetition penalty from the checkpoint's ``generation_config``).
A prompt longer than ``max_length - max_completion_length`` ids is cut from the start of its content
before sampling (``prompt_cutting``), by the rule the reward input and the held-out prompts follow.
The policy is trained from fp32 master weights.
Held-out prompts are scored by the same reward model before and after training (``eval_reward``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from typing import Any

from core.formatting import (
    generation_prompt_ids,
    literal_prompt,
    plain_prompt,
    response_reward_input,
    stop_token_ids,
)
from training.runners.configs import ConfigError, RLRunConfig
from training.runners.data import check_rl_prompts_render, encode, load_prompt_splits, via_formatting
from training.runners.dpo import load_causal_lm
from training.runners.models import atomic_output, load_tokenizer, write_run_record
from training.runners.protocol import Emitter, ModelError, Timer, trainer_callback
from training.runners.reward import (
    checkpoint_record,
    load_reward_model,
    resumed,
    save_trained,
    train,
    training_arguments,
)
from training.services.evaluation import penalise_unended, score_sequences


def explicit_sampling(temperature: float) -> dict[str, Any]:
    """Every sampling setting passed explicitly: transformers fills whatever ``generate`` is not given
    from the checkpoint's ``generation_config`` (Qwen ships repetition_penalty 1.05, top_k 20,
    top_p 0.8), so plain softmax(logits / T) sampling must say so."""
    return {
        "do_sample": True,
        "temperature": temperature,
        "top_k": 0,
        "top_p": 1.0,
        "min_p": 0.0,
        "typical_p": 1.0,
        "repetition_penalty": 1.0,
        "no_repeat_ngram_size": 0,
        "epsilon_cutoff": 0.0,
        "eta_cutoff": 0.0,
    }


def reward_function(
    reward,
    reward_tok,
    max_length: int,
    device_of,
    *,
    policy_tok=None,
    stop_ids: list[int] | None = None,
    missing_eos_penalty: float | None = None,
    batch_size: int = 16,
):
    """A TRL reward function scoring (prompt, completion) with the reward model.

    TRL passes each completion's token ids (``completion_ids``: up to and including its first end
    id, or all ``max_completion_length`` of them when it never ended); they are read as PPO reads a
    response (``core.formatting.response_reward_input``): a completion that ended is scored on
    exactly the ids reward training uses (``core.formatting.reward_input_ids``, end token included);
    one cut off before any end id (``stop_ids``, the policy's) is scored without the end token it
    never produced and loses ``missing_eos_penalty``. The reward model reads ``batch_size`` sequences
    per forward (the run's ``per_device_eval_batch_size``). ``policy_tok`` decodes the ids (default: the
    reward model's tokenizer, for a policy that shares it; ``stop_ids`` default to its end ids).
    Called without ``completion_ids`` (not by TRL), the completions are taken as finished replies."""
    policy_tok = policy_tok if policy_tok is not None else reward_tok
    stops = list(stop_ids) if stop_ids is not None else stop_token_ids(policy_tok)

    def reward_model(prompts, completions, completion_ids=None, **kwargs) -> list[float]:
        device = device_of()
        if next(reward.parameters()).device != device:
            reward.to(device)
        if completion_ids is None:
            seqs = [encode(reward_tok, p, c, max_length) for p, c in zip(prompts, completions, strict=True)]
            ended = [True] * len(seqs)
        else:
            read = [
                response_reward_input(policy_tok, reward_tok, stops, p, list(ids), max_length)
                for p, ids in zip(prompts, completion_ids, strict=True)
            ]
            seqs, ended = [ids for ids, _ in read], [e for _, e in read]
        scores = score_sequences(reward, seqs, pad_id=reward_tok.pad_token_id, batch_size=batch_size)
        return penalise_unended(scores, ended, missing_eos_penalty)

    return reward_model


def prompt_budget(cfg: RLRunConfig) -> int:
    """The most ids a prompt keeps: what ``max_length`` leaves beside a whole completion (at least 1),
    in training (``prompt_cutting``) and on the held-out prompts alike."""
    return max(cfg.max_length - cfg.max_completion_length, 1)


def prompt_cutting(trainer_class, budget: int):
    """``trainer_class`` (TRL's ``RLOOTrainer`` or ``GRPOTrainer``) sampling from, and training on,
    prompts cut to ``budget`` ids (``max_length - max_completion_length``) by
    ``core.formatting.truncate_prompt_ids``: the rule the reward model's input and the held-out
    prompts are cut by. TRL 1.16 has no prompt limit: it tokenised each whole prompt, so
    ``max_length`` bounded nothing the policy was trained on. Its ``_tokenize_prompts`` (whose ids
    both sampling and the loss use) is kept, and its ids cut."""
    from core.formatting import truncate_prompt_ids

    if not callable(getattr(trainer_class, "_tokenize_prompts", None)):
        import trl

        raise ModelError(
            f"TRL {trl.__version__}'s {trainer_class.__name__} tokenises prompts differently from TRL 1.16 (the "
            "pinned version), so max_length cannot cut them; install the version requirements.txt pins."
        )

    class PromptCuttingTrainer(trainer_class):
        def _tokenize_prompts(self, prompts):
            ids, images, fields = super()._tokenize_prompts(prompts)
            cut = [
                truncate_prompt_ids(self.processing_class, prompt, list(one), budget)
                for prompt, one in zip(prompts, ids, strict=True)
            ]
            return cut, images, fields

    return PromptCuttingTrainer


@contextlib.contextmanager
def ending_at(model, stop_ids: list[int]):
    """While TRL's trainer is built: ``model``'s generation_config lists ``stop_ids`` (every end id
    the runner reads a completion up to) as its ``eos_token_id``, put back as shipped afterwards.

    TRL 1.16 reads the end ids once, at its trainer's construction, from the tokenizer's EOS and
    ``model.generation_config.eos_token_id``: it stops sampling there, cuts each completion after
    its first one and takes a completion without one as cut off (``mask_truncated_completions``,
    its ``clipped_ratio``). A checkpoint whose template's end-of-turn is not listed there (a base
    model shipped with a chat template) went on being sampled, and trained on, past the end the
    reward read, and ``mask_truncated_completions`` left such finished completions out of the loss."""
    config = model.generation_config
    shipped = config.eos_token_id
    config.eos_token_id = list(stop_ids)
    try:
        yield
    finally:
        config.eos_token_id = shipped


def _eval_reward(
    model,
    tokenizer,
    reward,
    reward_tok,
    prompts: list[Any],
    cfg: RLRunConfig,
    *,
    stop_ids: list[int] | None = None,
) -> dict[str, float]:
    """Mean reward of one sampled completion per held-out prompt (fixed seed; explicit sampling),
    scored as training scores it: a completion read up to its first end id (``stop_ids``, default
    the policy's end ids) by ``response_reward_input``, one that never ended without the end token
    and less ``missing_eos_penalty``. A long prompt is cut to leave room for
    ``max_completion_length`` tokens by ``core.formatting.truncate_prompt_ids`` (BOS and generation
    prompt kept), as the reward input cuts it."""
    import torch

    if not prompts:
        return {}
    stops = list(stop_ids) if stop_ids is not None else stop_token_ids(tokenizer)
    device = next(model.parameters()).device
    reward.to(device)
    torch.manual_seed(cfg.seed + 7919)
    seqs, ended = [], []
    model.eval()
    budget = prompt_budget(cfg)
    for prompt in prompts:
        ids = via_formatting(generation_prompt_ids, tokenizer, prompt, budget)
        ids = torch.tensor([ids], device=device)
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=cfg.max_completion_length,
                pad_token_id=tokenizer.pad_token_id,
                **explicit_sampling(cfg.temperature),
            )
        seq, done = response_reward_input(
            tokenizer, reward_tok, stops, prompt, out[0, ids.shape[1] :].tolist(), cfg.max_length
        )
        seqs.append(seq)
        ended.append(done)
    scores = score_sequences(
        reward, seqs, pad_id=reward_tok.pad_token_id, batch_size=cfg.per_device_eval_batch_size
    )
    scores = penalise_unended(scores, ended, cfg.missing_eos_penalty)
    return {"reward": sum(scores) / len(scores)}


def run(kind: str, cfg: RLRunConfig, emitter: Emitter | None = None) -> dict[str, Any]:
    from datasets import Dataset

    if kind == "rloo":
        from trl import RLOOConfig as Config
        from trl import RLOOTrainer as Trainer
    else:
        from trl import GRPOConfig as Config
        from trl import GRPOTrainer as Trainer

    emitter = emitter or Emitter(cfg.metrics_file)
    timer = Timer()
    cfg.check_world_size(int(os.environ.get("WORLD_SIZE", "1") or 1))  # before any model loads
    if cfg.use_vllm and importlib.util.find_spec("vllm") is None:  # TRL would say so once all is loaded
        raise ConfigError(
            "use_vllm is set, but vLLM is not installed in this training environment (the pinned "
            "training environments do not include it: README, Environments): set use_vllm to false to "
            "sample with transformers."
        )
    train_prompts, eval_prompts, eval_skipped = load_prompt_splits(cfg, limit=min(cfg.max_eval_rows, 64))
    tokenizer = load_tokenizer(cfg.base_model)
    tokenizer.padding_side = "left"
    if not tokenizer.chat_template:  # a base model: conversations as plain transcripts (core.formatting)
        train_prompts = [plain_prompt(p) for p in train_prompts]
        eval_prompts = [plain_prompt(p) for p in eval_prompts]
    # TRL tokenises the prompts itself: special-token text in them made literal first, so it reads
    # the ids core.formatting.prompt_ids gives (never a forged turn); other prompts are unchanged
    train_prompts = [via_formatting(literal_prompt, tokenizer, p) for p in train_prompts]
    reward_tok = load_tokenizer(cfg.reward_model)
    # TRL fails mid-training on a prompt a template refuses: checked before the models load
    check_rl_prompts_render(tokenizer, reward_tok, train_prompts + eval_prompts, cfg)
    record = checkpoint_record(kind, cfg, len(train_prompts))
    reward = load_reward_model(cfg.reward_model, reward_tok, trainable=False)  # frozen: checkpoint dtype
    model = load_causal_lm(cfg.base_model, tokenizer)
    # what ends a completion: every end id the policy declares (TRL reads only the tokenizer's EOS and
    # generation_config's eos_token_id, a subset of these: ``ending_at`` hands it all of them)
    stop_ids = stop_token_ids(tokenizer, getattr(model, "generation_config", None))
    before = _eval_reward(model, tokenizer, reward, reward_tok, eval_prompts, cfg, stop_ids=stop_ids)
    if before:
        emitter.metrics(0, {f"eval_{k}": v for k, v in before.items()})

    with atomic_output(cfg.output_dir, overwrite=cfg.overwrite_output_dir) as tmp:
        args = Config(
            **training_arguments(cfg, tmp),
            num_generations=cfg.num_generations,
            max_completion_length=cfg.max_completion_length,
            temperature=cfg.temperature,
            top_k=0,
            top_p=1.0,
            min_p=0.0,
            repetition_penalty=1.0,  # explicit: not the checkpoint's generation_config defaults
            beta=cfg.beta,
            use_vllm=cfg.use_vllm,
            mask_truncated_completions=cfg.mask_truncated_completions,
        )
        holder: dict[str, Any] = {}
        # TRL samples from whole prompts: each is cut to leave room for the completion, as in evaluation
        with ending_at(model, stop_ids):  # TRL stops where the reward reads a completion's end
            trainer = prompt_cutting(Trainer, prompt_budget(cfg))(
                model=model,
                reward_funcs=reward_function(
                    reward,
                    reward_tok,
                    cfg.max_length,
                    lambda: holder["device"],
                    policy_tok=tokenizer,
                    stop_ids=stop_ids,
                    missing_eos_penalty=cfg.missing_eos_penalty,
                    batch_size=cfg.per_device_eval_batch_size,
                ),
                args=args,
                train_dataset=Dataset.from_list([{"prompt": p} for p in train_prompts]),
                processing_class=tokenizer,
                callbacks=[trainer_callback(emitter)],
            )
        holder["device"] = trainer.accelerator.device
        # looked up before training: a run resumed into its own output writes newer checkpoints there
        resumed_from = resumed(cfg)
        result = train(trainer, cfg, record)
        # Training left the policy's forward wrapped in accelerate's autocast (bf16): unwrapped, the
        # held-out completions are sampled in fp32, as before training and as the saved policy samples.
        policy = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
        after = _eval_reward(policy, tokenizer, reward, reward_tok, eval_prompts, cfg, stop_ids=stop_ids)
        final: dict[str, Any] = {
            "train_loss": result.training_loss,
            **resumed_from,
            **({"eval_skipped": eval_skipped} if eval_skipped else {}),
            **{f"eval_{k}": v for k, v in after.items()},
            **{f"eval_before_{k}": v for k, v in before.items()},
            "seconds": timer.seconds,
        }
        save_trained(trainer, policy, tokenizer, tmp, merged=False, policy_of=cfg.base_model)
        write_run_record(tmp, kind, cfg.as_dict(), final)
    final["output_dir"] = cfg.output_dir
    return emitter.final(final)
