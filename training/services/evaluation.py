"""Reward-model scoring and pair evaluation: the one implementation behind the reward runner's own
held-out evaluation (before and after training, computed identically), ``manage.py evaluate_reward``,
and reward scoring in PPO/RLOO/GRPO.

Sequences are built by ``core.formatting.reward_input_ids`` (the formatting reward training uses), so
a model is evaluated on exactly the tokens it was trained on. Figures for a set of pairs:

* ``accuracy``: share of pairs where r(chosen) > r(rejected); an exact tie counts half (an untrained
  or indifferent model scores 0.5, not 0).
* ``margin``: mean r(chosen) - r(rejected).
* ``accuracy_ci_low``/``accuracy_ci_high``: percentile bootstrap interval of the accuracy (1,000
  resamples of the pairs, 95 %, fixed seed), so a figure on a few hundred pairs shows its spread.

No Django imports: the runners (plain Python) use this module.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from core.batches import padded_batch

BOOTSTRAP_RESAMPLES = 1000
#: ``evaluate_reward_model``'s length for a model without a run record (one not trained here).
DEFAULT_MAX_LENGTH = 512
CONFIDENCE = 0.95


def _forward_batches(
    model,
    sequences: list[list[int]],
    *,
    pad_id: int,
    batch_size: int,
    step: Callable[[range, Any, Any], Iterable[float]],
) -> list[float]:
    """Run ``step(rows, ids, mask)`` on right-padded batches of ``sequences`` (``rows``: the batch's
    indices into ``sequences``; ``ids`` and ``mask`` on the model's device), in eval mode without
    gradients, and collect the floats it returns in order. The model's training mode is restored."""
    import torch

    device = next(model.parameters()).device
    out: list[float] = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for i in range(0, len(sequences), batch_size):
            chunk = sequences[i : i + batch_size]
            ids, mask = padded_batch(chunk, pad_id, left=False)
            out.extend(step(range(i, i + len(chunk)), ids.to(device), mask.to(device)))
    if was_training:
        model.train()
    return out


def score_sequences(model, sequences: list[list[int]], *, pad_id: int, batch_size: int = 16) -> list[float]:
    """Rewards of token sequences (right-padded; the model pools the last non-pad token)."""

    def step(rows: range, ids, mask) -> list[float]:
        return model(input_ids=ids, attention_mask=mask).logits[:, 0].float().cpu().tolist()

    return _forward_batches(model, sequences, pad_id=pad_id, batch_size=batch_size, step=step)


def penalise_unended(scores: list[float], ended: list[bool], penalty: float | None) -> list[float]:
    """Rewards less ``penalty`` (``missing_eos_penalty``) for the responses that never ended."""
    if not penalty:
        return list(scores)
    return [s if e else s - penalty for s, e in zip(scores, ended, strict=True)]


def bootstrap_ci(
    wins: list[float], *, resamples: int = BOOTSTRAP_RESAMPLES, confidence: float = CONFIDENCE, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``wins`` (1, 0.5 or 0 per pair)."""
    import numpy as np

    if not wins:
        return (0.0, 0.0)
    values = np.asarray(wins, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(resamples, len(values)))
    means = values[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def _log_sigmoid(x: float) -> float:
    """log(1 / (1 + e^-x)), finite for any margin."""
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def pair_figures(
    chosen: list[float], rejected: list[float], *, p_chosen: list[float] | None = None, seed: int = 0
) -> dict[str, float]:
    """accuracy (ties half), its bootstrap CI, mean margin, mean reward, pair count. With soft labels
    (``p_chosen``, the probability that the chosen reply is the preferred one) below 1 somewhere,
    also ``soft_accuracy`` (the expected agreement with a label drawn with that probability; ties
    count half) and ``soft_log_loss`` (the Bradley-Terry cross-entropy against it,
    -(p log sigmoid(d) + (1 - p) log sigmoid(-d)), d = r(chosen) - r(rejected), the soft training
    loss without margins)."""
    if not chosen:
        return {}
    wins = [1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected, strict=True)]
    low, high = bootstrap_ci(wins, seed=seed)
    n = len(wins)
    figures = {
        "accuracy": sum(wins) / n,
        "accuracy_ci_low": low,
        "accuracy_ci_high": high,
        "margin": sum(c - r for c, r in zip(chosen, rejected, strict=True)) / n,
        "reward": (sum(chosen) + sum(rejected)) / (2 * n),
        "pairs": n,
    }
    if p_chosen is not None and any(p < 1 for p in p_chosen):
        margins = [c - r for c, r in zip(chosen, rejected, strict=True)]
        figures["soft_accuracy"] = (
            sum(p * w + (1 - p) * (1 - w) for p, w in zip(p_chosen, wins, strict=True)) / n
        )
        figures["soft_log_loss"] = (
            -sum(
                p * _log_sigmoid(d) + (1 - p) * _log_sigmoid(-d)
                for p, d in zip(p_chosen, margins, strict=True)
            )
            / n
        )
    return figures


def pair_ids(tokenizer, rows: list[dict[str, Any]], max_length: int) -> list[dict[str, Any]]:
    """chosen/rejected reward-model ids of preference rows (``core.formatting.reward_input_ids``)."""
    from core.formatting import reward_input_ids

    return [
        {
            "chosen_ids": reward_input_ids(tokenizer, r["prompt"], r["chosen"], max_length),
            "rejected_ids": reward_input_ids(tokenizer, r["prompt"], r["rejected"], max_length),
        }
        for r in rows
    ]


def evaluate_pairs(
    model, pairs: list[dict[str, Any]], *, pad_id: int, batch_size: int = 16
) -> dict[str, float]:
    """Figures of tokenised pairs (``pair_ids``) under a reward model; pairs that carry ``p_chosen``
    (soft labels) add the soft figures (``pair_figures``)."""
    if not pairs:
        return {}
    chosen = score_sequences(model, [p["chosen_ids"] for p in pairs], pad_id=pad_id, batch_size=batch_size)
    rejected = score_sequences(
        model, [p["rejected_ids"] for p in pairs], pad_id=pad_id, batch_size=batch_size
    )
    soft = [float(p.get("p_chosen", 1.0)) for p in pairs] if any("p_chosen" in p for p in pairs) else None
    return pair_figures(chosen, rejected, p_chosen=soft)


def evaluate_reward_model(
    model_dir: str,
    dataset_path: str,
    *,
    max_length: int | None = None,
    batch_size: int = 16,
    limit: int = 0,
    check_model: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """Figures of a saved reward model on a file of HH-RLHF or TRL preference rows.

    ``max_length`` None: the length the model was trained with (its run record,
    ``models.trained_max_length``), so a run's held-out file reads as the run read it; else
    ``DEFAULT_MAX_LENGTH``. The figures also say which (``max_length``).

    ``check_model(model_dir)``, when given, runs once the data is read and before the model loads
    (the command's ``core.paths.usable_model``: this module has no Django imports).
    Raises ``training.runners.protocol.RunnerError`` (DataError/ModelError) with a clear message."""
    from training.runners.data import load_preferences
    from training.runners.models import load_tokenizer
    from training.runners.reward import load_reward_model

    data = load_preferences(dataset_path)
    rows = data.rows[:limit] if limit > 0 else data.rows
    if check_model is not None:
        check_model(model_dir)
    if max_length is None:
        from training.runners.models import trained_max_length

        max_length = trained_max_length(model_dir) or DEFAULT_MAX_LENGTH
    tokenizer = load_tokenizer(model_dir)
    from training.runners.data import via_formatting
    from training.runners.protocol import DataError

    pairs = via_formatting(pair_ids, tokenizer, rows, max_length)
    if data.has_soft_labels:  # each row has p_chosen then (1.0 where its line had none)
        for pair, row in zip(pairs, rows, strict=True):
            pair["p_chosen"] = row["p_chosen"]
    # a pair whose replies differ only past the cut reads the same: it can only score a tie
    cut_identical = sum(p["chosen_ids"] == p["rejected_ids"] for p in pairs)
    if pairs and cut_identical == len(pairs):
        raise DataError(
            f"No pair differs within max_length={max_length} tokens: all {cut_identical} pairs read the "
            "same once cut (their replies differ only past the cut), so every one would score a tie. "
            "Raise the max length."
        )
    model = load_reward_model(model_dir, tokenizer, trainable=False)
    figures = evaluate_pairs(model, pairs, pad_id=tokenizer.pad_token_id, batch_size=batch_size)
    figures["dropped_tie_pairs"] = data.dropped_ties
    figures["dropped_identical_pairs"] = data.dropped_identical
    figures["cut_identical_pairs"] = cut_identical  # scored (as ties: half a correct pair each)
    figures["max_length"] = max_length
    return figures


def _summed_completion_logprobs(
    model, seqs: list[list[int]], lengths: list[int], *, pad_id: int, batch_size: int
) -> list[float]:
    """The summed log-probability of the last ``lengths[k]`` ids of each ``seqs[k]`` after the ids
    before them (a sequence's first id has none: a completion that is the whole sequence is summed
    from its second id, as TRL's shifted labels do)."""
    import torch

    def step(batch: range, ids, mask) -> list[float]:
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        tok = torch.gather(logp, 2, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        return [
            float(tok[j, max(len(seqs[k]) - 1 - lengths[k], 0) : len(seqs[k]) - 1].sum())
            for j, k in enumerate(batch)
        ]

    return _forward_batches(model, seqs, pad_id=pad_id, batch_size=batch_size, step=step)


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def completion_logprobs(
    model, tokenizer, rows: list[dict[str, Any]], key: str, *, max_length: int, batch_size: int = 8
) -> list[float]:
    """Summed log-probabilities of each row's ``key`` response after its prompt: the sequence and its
    truncation are ``core.formatting.sequence_ids``' (the template's conversation split at the
    generation prompt, the prompt cut from the start of its content keeping BOS and headers), the
    response's end token included. (DPO's held-out figures read the ids DPO trains on instead, fitted
    by its runner: ``dpo_reference``.)"""
    from core.formatting import sequence_and_completion_length

    seqs: list[list[int]] = []
    lengths: list[int] = []  # of each sequence's completion, at its end
    for r in rows:
        seq, n = sequence_and_completion_length(tokenizer, r["prompt"], r[key], max_length)
        seqs.append(seq)
        lengths.append(n)
    return _summed_completion_logprobs(model, seqs, lengths, pad_id=_pad_id(tokenizer), batch_size=batch_size)


def dpo_reference(model, tokenizer, pairs: list[dict[str, list[int]]], *, batch_size: int = 8) -> dict:
    """The summed log-probs of each held-out pair's chosen and rejected completion under ``model``
    (before training: the reference). ``pairs`` are the ids TRL's ``DPOTrainer`` is handed
    (``prompt_ids``, ``chosen_ids``, ``rejected_ids``: ``training.runners.data.dpo_ids``, fitted and
    cut by the DPO runner), read as they are, so the figures score exactly the tokens DPO trains on."""
    out = {}
    for key in ("chosen", "rejected"):
        seqs = [p["prompt_ids"] + p[f"{key}_ids"] for p in pairs]
        lengths = [len(p[f"{key}_ids"]) for p in pairs]
        out[key] = _summed_completion_logprobs(
            model, seqs, lengths, pad_id=_pad_id(tokenizer), batch_size=batch_size
        )
    return out


def dpo_figures(
    model,
    tokenizer,
    pairs: list[dict[str, list[int]]],
    reference: dict,
    *,
    beta: float,
    batch_size: int = 8,
) -> dict[str, float]:
    """Implicit-reward figures of held-out pairs (ids as ``dpo_reference`` reads them): r = beta *
    (log pi(y|x) - log pi_ref(y|x)); accuracy with ties half, so the untrained policy (r = 0 for both)
    scores 0.5, computed exactly as after. Pairs that carry ``p_chosen`` (soft labels) add the soft
    figures (``pair_figures``)."""
    if not pairs:
        return {}
    now = dpo_reference(model, tokenizer, pairs, batch_size=batch_size)
    chosen = [beta * (a - b) for a, b in zip(now["chosen"], reference["chosen"], strict=True)]
    rejected = [beta * (a - b) for a, b in zip(now["rejected"], reference["rejected"], strict=True)]
    soft = [float(p.get("p_chosen", 1.0)) for p in pairs] if any("p_chosen" in p for p in pairs) else None
    return pair_figures(chosen, rejected, p_chosen=soft)
