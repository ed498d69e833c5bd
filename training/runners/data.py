"""Dataset files for the runners: reading JSONL/Parquet rows, preference pairs (standard,
conversational, HH-RLHF transcripts, unpaired KTO rows), held-out splits, prompts; and the token ids
of a (prompt, response), defined once in ``core.formatting`` and wrapped here so that its errors
become the runners' ``ModelError``."""

from __future__ import annotations

import gzip
import json
import math
import random
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from core import formatting
from core.formatting import is_conversational
from core.hh import HHFormatError, split_pair
from training.runners.protocol import DataError, ModelError

# --- datasets -----------------------------------------------------------------------------------


def read_rows(path: str, lines: list[int] | None = None) -> list[dict[str, Any]]:
    """Rows of a JSONL (plain or gzip) or Parquet file; ``lines`` (when given) gets each row's line
    number in the file (blank lines are skipped but counted; a Parquet row's index + 1)."""
    p = Path(path)
    if path and p.is_dir():
        raise DataError(f"Dataset {path} is a folder, not a file.")
    if not path or not p.is_file():
        raise DataError(f"Dataset file not found: {path or '(none given)'}")
    if p.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(p).to_pylist()
        except Exception as exc:
            raise DataError(f"{p.name} is not a readable Parquet file: {exc}") from exc
        if lines is not None:
            lines.extend(range(1, len(table) + 1))
        return table
    opener = gzip.open if p.suffix == ".gz" else open
    rows = []
    number = 0
    with opener(p, "rb") as fh:
        while True:
            try:
                raw = fh.readline()
            except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
                raise DataError(
                    f"{p.name} line {number + 1}: the gzip data is damaged or cut short at or after it ({exc})."
                ) from None
            if not raw:
                break
            number += 1
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(f"{p.name} line {number}: not UTF-8 text.") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{p.name} line {number}: not valid JSON ({exc.msg}).") from exc
            if not isinstance(obj, dict):
                raise DataError(f"{p.name} line {number}: each line must be a JSON object.")
            rows.append(obj)
            if lines is not None:
                lines.append(number)
    return rows


def _pairs_from_unpaired(rows: list[dict[str, Any]], where: list[str]) -> list[dict[str, Any]]:
    """KTO rows (prompt, completion, label) -> pairs: each good completion against each bad one of the
    same prompt (at most 4 per prompt). ``where[i]``: row i's place in the file, for errors."""
    for r, place in zip(rows, where, strict=True):
        missing = [k for k in ("prompt", "completion") if r.get(k) is None]
        if missing:
            raise DataError(
                f"{place}: every unpaired (KTO) row needs prompt, completion and label ({' and '.join(missing)} missing)."
            )
        for key in ("prompt", "completion"):
            problem = _text_or_messages_problem(r[key])
            if problem:
                raise DataError(f"{place}: {key} {problem}.")
    labels = {bool(r.get("label")) for r in rows}
    if len(labels) < 2:
        which = "desirable" if labels == {True} else "undesirable"
        raise DataError(
            f"Single-class data: every completion is labelled {which}; there is nothing to compare."
        )
    by_prompt: dict[str, dict[str, Any]] = {}
    for r in rows:
        key = json.dumps(r["prompt"], sort_keys=True)
        slot = by_prompt.setdefault(key, {"prompt": r["prompt"], "good": [], "bad": []})
        slot["good" if r.get("label") else "bad"].append(r["completion"])
    pairs = []
    for slot in by_prompt.values():
        combos = [(g, b) for g in slot["good"] for b in slot["bad"]][:4]
        pairs.extend({"prompt": slot["prompt"], "chosen": g, "rejected": b} for g, b in combos)
    return pairs


def _text_or_messages_problem(value: Any) -> str | None:
    """Why ``value`` is neither a text nor a list of messages (``{"role": str, "content": str}``)."""
    if isinstance(value, str):
        return None
    if not isinstance(value, list) or not value:
        return f"must be a text or a non-empty list of messages, not {type(value).__name__}"
    for i, m in enumerate(value):
        if (
            not isinstance(m, dict)
            or not isinstance(m.get("role"), str)
            or not isinstance(m.get("content"), str)
        ):
            return f"message {i + 1} must be an object with a text role and content"
    return None


def _check_pair_row(where: str, row: dict[str, Any]) -> None:
    """Refuse a preference row whose fields no runner can tokenise, or whose ``margin`` or
    ``p_chosen`` is no number it can train on, naming its line and field."""
    for key in ("prompt", "chosen", "rejected"):
        problem = _text_or_messages_problem(row[key])
        if problem:
            raise DataError(f"{where}: {key} {problem}.")
    margin = row.get("margin")
    if margin is not None and (
        isinstance(margin, bool) or not isinstance(margin, int | float) or not math.isfinite(margin)
    ):
        raise DataError(f"{where}: margin must be a finite number (or absent), not {margin!r}.")
    p = row.get("p_chosen")
    if p is not None and (isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 1):
        raise DataError(f"{where}: p_chosen must be a number from 0 to 1 (or absent), not {p!r}.")


@dataclass
class PreferenceData:
    rows: list[dict[str, Any]]
    conversational: bool
    has_margin: bool
    dropped_identical: int = 0
    dropped_ties: int = 0  # tie / both-bad rows (``flag`` set): never trained as a preference
    #: Some row has ``p_chosen`` (an export's ``soft_labels``): then every row has it, 1.0 where absent.
    has_soft_labels: bool = False
    rows_read: int = 0  # rows (or, for unpaired KTO rows, pairs made) before anything was dropped
    #: Why the run has no held-out evaluation (``load_pair_splits``: its held-out file has no usable
    #: pair), as the log line says it and the final metrics carry it (``eval_skipped``); "" otherwise.
    eval_skipped: str = ""


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def _dropped(data: PreferenceData) -> list[str]:
    """What a preference file's reading dropped, as counts (ties, identical pairs), for a note."""
    why = [_count(data.dropped_ties, "tie")] if data.dropped_ties else []
    if data.dropped_identical:
        why.append(f"{data.dropped_identical} with identical chosen and rejected")
    return why


def evaluation_skipped(rows: int, why: list[str], *, what: str = "usable pairs") -> str:
    """The note of a run whose held-out split has ``rows`` rows and no ``what`` (usable pairs; an
    RL run's prompts), ``why`` (the counts of what was dropped): printed to the run's log, and
    returned for its final metrics (``eval_skipped``). The run trains anyway and reports no
    held-out figure."""
    note = f"held-out split: 0 {what} of {rows} rows ({', '.join(why)}); evaluation skipped"
    print(note, file=sys.stderr)
    return note


def load_preferences(path: str, *, held_out: bool = False) -> PreferenceData:
    """Preference pairs from a TRL file: standard, conversational, implicit-prompt (HH-RLHF transcripts,
    split by ``core.hh``) or unpaired (KTO, paired up per prompt). Pairs whose chosen equals rejected
    teach nothing and are dropped; rows with a ``flag`` (a tie or "both bad" verdict, exported with
    ``ties=keep``) are not preferences and are dropped too, with their count logged and reported
    (``dropped_tie_pairs``); no pair left is an error (empty or single-class export), except in a
    ``held_out`` file, which then gives no rows (the run skips its evaluation, ``load_pair_splits``)."""
    lines: list[int] = []
    raw = read_rows(path, lines)
    if not raw:
        if held_out:
            return PreferenceData(rows=[], conversational=False, has_margin=False)
        raise DataError(
            f"The dataset {Path(path).name} has no rows (as an export of a project with no comparisons yet)."
        )
    name = Path(path).name
    first = raw[0]
    if {"prompt", "completion", "label"} <= set(first):
        raw = _pairs_from_unpaired(raw, [f"{name} line {n}" for n in lines])
        lines = []  # pairs made from several rows: numbered as pairs
    elif not {"chosen", "rejected"} <= set(first):
        raise DataError(
            f"{Path(path).name} is not a TRL preference file: rows need prompt/chosen/rejected "
            f"(found {', '.join(sorted(first)) or 'no columns'})."
        )
    rows: list[dict[str, Any]] = []
    dropped = ties = 0
    for number, r in enumerate(raw, start=1):
        where = f"{name} line {lines[number - 1]}" if lines else f"{name} pair {number}"
        if r.get("flag"):
            ties += 1
            continue
        prompt, chosen, rejected = r.get("prompt"), r.get("chosen"), r.get("rejected")
        if prompt is None:
            try:
                pair = split_pair(chosen, rejected)
            except HHFormatError as exc:
                raise DataError(
                    f"{where}: rows without a prompt must be HH-RLHF transcripts "
                    f"('\\n\\nHuman: ...'); {exc.field or 'row'} {exc.message}."
                ) from None
            prompt = pair.prompt
            chosen = [{"role": "assistant", "content": pair.chosen}]
            rejected = [{"role": "assistant", "content": pair.rejected}]
        if chosen is None or rejected is None:
            missing = " and ".join(k for k, v in (("chosen", chosen), ("rejected", rejected)) if v is None)
            raise DataError(f"{where}: every row needs both chosen and rejected ({missing} missing).")
        checked = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
        _check_pair_row(where, {**checked, "margin": r.get("margin"), "p_chosen": r.get("p_chosen")})
        if chosen == rejected:
            dropped += 1
            continue
        row = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
        for key in ("margin", "p_chosen"):
            if r.get(key) is not None:
                row[key] = float(r[key])
        rows.append(row)
    if ties:
        print(
            f"Dropped {ties} tie/both-bad row(s) of {Path(path).name}: a tie is never trained as a preference.",
            file=sys.stderr,
        )
    if not rows and not held_out:
        if ties:
            raise DataError(
                f"No usable preference pairs in {Path(path).name}: {ties} tie/both-bad rows (never trained as "
                f"preferences) and {dropped} rows with identical chosen and rejected responses."
            )
        raise DataError(
            f"No usable preference pairs in {Path(path).name}: all {dropped} rows have identical chosen and rejected "
            "responses (single-class data)."
        )
    conv = bool(rows) and (is_conversational(rows[0]["prompt"]) or is_conversational(rows[0]["chosen"]))
    if conv:
        for r in rows:
            for key in ("chosen", "rejected"):
                if isinstance(r[key], str):
                    r[key] = [{"role": "assistant", "content": r[key]}]
            if isinstance(r["prompt"], str):
                r["prompt"] = [{"role": "user", "content": r["prompt"]}]
    has_margin = any("margin" in r for r in rows)
    has_soft_labels = any("p_chosen" in r for r in rows)
    for r in rows:
        if has_margin:
            r.setdefault("margin", 0.0)
        if has_soft_labels:
            r.setdefault("p_chosen", 1.0)  # a row without a soft label is a certain preference
    return PreferenceData(
        rows=rows,
        conversational=conv,
        has_margin=has_margin,
        dropped_identical=dropped,
        dropped_ties=ties,
        rows_read=len(raw),
        has_soft_labels=has_soft_labels,
    )


def split_eval(
    rows: list[dict[str, Any]],
    *,
    eval_rows: list[dict[str, Any]] | None,
    fraction: float,
    seed: int,
    limit: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, eval): the given eval rows, or a deterministic ``fraction`` of ``rows`` held out (at
    least one); nothing is held out from fewer than 4 rows (one or two pairs are all a run has to
    learn from), and the run then reports no held-out figures. At most ``limit`` rows are held out
    (``max_eval_rows``, PPO's ``eval_prompts``, RLOO/GRPO's 64 prompts: all that is evaluated), the
    first of the same seeded draw: a row is trained on or evaluated, never neither; ``limit`` 0
    holds none out."""
    if eval_rows is not None:
        return rows, eval_rows[:limit]
    if fraction <= 0 or len(rows) < 4 or limit <= 0:
        return rows, []
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_eval = min(max(1, round(len(rows) * fraction)), limit)
    held = set(order[:n_eval])
    return [r for i, r in enumerate(rows) if i not in held], [rows[i] for i in order[:n_eval]]


def load_pair_splits(cfg) -> tuple[PreferenceData, list[dict[str, Any]], list[dict[str, Any]]]:
    """(all data, train rows, held-out rows) of a preference run's config. A held-out file with no
    usable pair (empty, or every row a tie or identical pair) does not stop the run: it trains
    without held-out rows, and ``data.eval_skipped`` says why (``evaluation_skipped``)."""
    data = load_preferences(cfg.dataset_path)
    eval_rows = None
    if cfg.eval_dataset_path:
        held = load_preferences(cfg.eval_dataset_path, held_out=True)
        eval_rows = held.rows
        if not eval_rows:
            data.eval_skipped = evaluation_skipped(held.rows_read, _dropped(held) or ["the file is empty"])
    train_rows, eval_rows = split_eval(
        data.rows, eval_rows=eval_rows, fraction=cfg.eval_fraction, seed=cfg.seed, limit=cfg.max_eval_rows
    )
    return data, train_rows, eval_rows


class PromptSplits(NamedTuple):
    """An RL run's prompts: ``train``, ``eval`` (held out) and, when its held-out file gave no
    prompt, why evaluation is skipped (``eval_skipped``, for the final metrics; "" otherwise)."""

    train: list[Any]
    eval: list[Any]
    eval_skipped: str = ""


def load_prompt_splits(cfg, *, limit: int) -> PromptSplits:
    """(train prompts, at most ``limit`` held-out prompts, ``eval_skipped``) of an RL run's config. A
    held-out file with no prompt (empty, or a preference file with no usable pair) does not stop the
    run, as for reward and DPO runs (``load_pair_splits``): it trains without held-out prompts."""
    prompts = load_prompts(cfg.dataset_path)
    eval_prompts, skipped = None, ""
    if cfg.eval_dataset_path:
        eval_prompts, rows, why = _prompts_of(cfg.eval_dataset_path, held_out=True)
        if not eval_prompts:
            why = why or ["no row has a prompt" if rows else "the file is empty"]
            skipped = evaluation_skipped(rows, why, what="prompts")
    train, held = split_eval(
        prompts, eval_rows=eval_prompts, fraction=cfg.eval_fraction, seed=cfg.seed, limit=limit
    )
    return PromptSplits(train, held, skipped)


def load_prompts(path: str) -> list[Any]:
    """Distinct prompts (strings or message lists) of a file of prompt rows or preference rows."""
    prompts, _, _ = _prompts_of(path)
    return prompts


def _prompts_of(path: str, *, held_out: bool = False) -> tuple[list[Any], int, list[str]]:
    """(``load_prompts``'s prompts, the rows read, why none is left): no prompt is an error unless
    ``held_out``."""
    lines: list[int] = []
    raw = read_rows(path, lines)
    read, why = len(raw), []
    if raw and "prompt" not in raw[0] and "messages" not in raw[0]:
        data = load_preferences(path, held_out=held_out)
        raw, lines = data.rows, []
        why = _dropped(data)
    seen: set[str] = set()
    prompts = []
    for number, r in enumerate(raw, start=1):
        p = r.get("prompt", r.get("messages"))
        if p and (problem := _text_or_messages_problem(p)):
            where = f"line {lines[number - 1]}" if lines else f"pair {number}"
            key = "prompt" if "prompt" in r else "messages"
            raise DataError(f"{Path(path).name} {where}: {key} {problem}.")
        if is_conversational(p) and p[-1].get("role") == "assistant":
            p = p[:-1]  # a conversation row: the prompt is everything before the last reply
        if not p:
            continue
        key = json.dumps(p, sort_keys=True)
        if key not in seen:
            seen.add(key)
            prompts.append(p)
    if not prompts and not held_out:
        raise DataError(f"No prompts in {Path(path).name}.")
    return prompts, read, why


# --- tokenisation -------------------------------------------------------------------------------
# The text and ids of a (prompt, response) are defined once, in ``core.formatting``; these wrappers
# turn its errors into the runners' ``ModelError``.


def pair_run_start(cfg, *, reward: bool) -> tuple[Any, list[dict], list[dict], Any]:
    """What a pairwise run (reward model, DPO) reads before any model loads: its pairs and their
    split (``load_pair_splits``), the base model's tokenizer, and the check that the tokenizer's
    template takes every pair's prompt (``check_prompts_render``, as a reward model reads it when
    ``reward``). Returns (data, train rows, held-out rows, tokenizer)."""
    from training.runners.models import load_tokenizer

    data, train_rows, eval_rows = load_pair_splits(cfg)
    tokenizer = load_tokenizer(cfg.base_model)
    prompts = [r["prompt"] for r in train_rows + eval_rows]
    check_prompts_render(tokenizer, prompts, model=cfg.base_model, role="base", what="pairs", reward=reward)
    return data, train_rows, eval_rows, tokenizer


def check_rl_prompts_render(policy_tokenizer, reward_tokenizer, prompts: list[Any], cfg) -> None:
    """An RL run's prompts (PPO, RLOO, GRPO), checked before the models load as both models read
    them: prompted to the policy, and with a reply, to the reward model (``check_prompts_render``)."""
    check_prompts_render(policy_tokenizer, prompts, model=cfg.base_model, role="policy")
    check_prompts_render(reward_tokenizer, prompts, model=cfg.reward_model, role="reward", reward=True)


def check_prompts_render(
    tokenizer, prompts: list[Any], *, model: str, role: str, what: str = "prompts", reward: bool = False
) -> None:
    """Refuse, before any model loads, prompts that ``model``'s chat template refuses (a system turn
    for Gemma's or Mistral's template, which raise like the real ones), naming the first and how
    many: otherwise a run fails the first time it formats one, mid-training (PPO's rollouts, TRL's
    RLOO/GRPO sampling) or after it (PPO's final samples), and its model is lost. ``reward``: the
    prompt is checked as the reward model reads it (with a reply, ``reward_input_ids``), else as a
    policy is prompted (``prompt_ids``). ``what`` names the items (one prompt each)."""
    from core.formatting import FormattingError

    refused: list[tuple[Any, FormattingError]] = []
    seen: dict[str, FormattingError | None] = {}  # pairs share prompts: each is rendered once
    for prompt in prompts:
        key = json.dumps(prompt, sort_keys=True)
        if key not in seen:
            try:
                if reward:
                    formatting.reward_input_ids(tokenizer, prompt, "ok", 1_000_000)
                else:
                    formatting.prompt_ids(tokenizer, prompt)
                seen[key] = None
            except FormattingError as exc:
                seen[key] = exc
        if seen[key] is not None:
            refused.append((prompt, seen[key]))
    if refused:
        prompt, exc = refused[0]
        shown = json.dumps(prompt, ensure_ascii=False)
        shown = shown if len(shown) <= 200 else shown[:200] + "..."
        reason = str(exc) if str(exc).endswith(".") else f"{exc}."
        raise DataError(
            f"{len(refused)} of {len(prompts)} {what} cannot be given to the {role} model {model!r}: {reason} "
            f"The first: {shown}. Leave them out or rewrite them (e.g. a system turn into the first user "
            "turn), or use a model whose chat template takes them."
        )


def via_formatting(fn, *args):
    from core.formatting import FormattingError

    try:
        return fn(*args)
    except FormattingError as exc:
        raise ModelError(str(exc)) from exc


def prompt_ids(tokenizer, prompt: Any) -> list[int]:
    return via_formatting(formatting.prompt_ids, tokenizer, prompt)


def encode(tokenizer, prompt: Any, completion: Any, max_length: int) -> list[int]:
    """prompt + completion ids within ``max_length`` (``core.formatting.reward_input_ids``): what a
    reward model reads, in training and in scoring alike."""
    return via_formatting(formatting.reward_input_ids, tokenizer, prompt, completion, max_length)


def tokenize_pairs(
    tokenizer, rows: list[dict[str, Any]], max_length: int, *, margin: bool, soft: bool = False
) -> list[dict[str, Any]]:
    """Reward-model id pairs of ``rows``, with each row's ``margin`` (0 where absent) when
    ``margin`` and its ``p_chosen`` (1 where absent) when ``soft``."""
    out = []
    for r in rows:
        item = {
            "chosen_ids": encode(tokenizer, r["prompt"], r["chosen"], max_length),
            "rejected_ids": encode(tokenizer, r["prompt"], r["rejected"], max_length),
        }
        if margin:
            item["margin"] = float(r.get("margin", 0.0))
        if soft:
            item["p_chosen"] = float(r.get("p_chosen", 1.0))
        out.append(item)
    return out


def dpo_ids(tokenizer, row: dict[str, Any]) -> dict[str, list[int]]:
    """The ids DPO trains on and scores for ``row`` (``prompt_ids``, ``chosen_ids``, ``rejected_ids``,
    TRL's ``DataCollatorForPreference`` columns): ``core.formatting.split_ids`` of (prompt, chosen)
    and of (prompt, rejected), the rule reward inputs and PPO/RLOO/GRPO follow: a conversation is the
    template's rendering split at the generation prompt, each reply ending AT the end-of-turn token
    (nothing the template renders after it); plain text is the prompt's ids (BOS included where the
    tokenizer adds one) and separator + reply + EOS. The prompt is the part both share (in the rare
    case they part earlier, as TRL's own ``common_prefix_length`` does, the rest goes to each reply)."""
    (p_chosen, chosen), (p_rejected, rejected) = (
        via_formatting(formatting.split_ids, tokenizer, row["prompt"], row[key])
        for key in ("chosen", "rejected")
    )
    n = formatting.common_prefix_length(p_chosen, p_rejected)
    return {
        "prompt_ids": p_chosen[:n],
        "chosen_ids": p_chosen[n:] + chosen,
        "rejected_ids": p_rejected[n:] + rejected,
    }


def dpo_fits(ids: dict[str, list[int]], max_length: int) -> bool:
    """Whether a row's ``dpo_ids`` fit ``max_length`` whole: prompt + chosen and prompt + rejected,
    end token included."""
    longest = max(len(ids["chosen_ids"]), len(ids["rejected_ids"]))
    return len(ids["prompt_ids"]) < max_length and len(ids["prompt_ids"]) + longest <= max_length


def cut_replies(ids: dict[str, list[int]], max_length: int) -> tuple[dict[str, list[int]], bool]:
    """(``ids`` with each reply cut from its end so that prompt + reply fit ``max_length``, whether
    one was cut): what TRL's collator (``truncation_mode="keep_start"``) would cut, done before TRL
    sees the row so that the held-out figures read the same ids as training. A cut reply loses its
    end token: it did not end there."""
    room = max_length - len(ids["prompt_ids"])
    out = {**ids, "chosen_ids": ids["chosen_ids"][:room], "rejected_ids": ids["rejected_ids"][:room]}
    return out, out != ids


def least_prompt(prompt: Any) -> Any:
    """The shortest prompt ``fit_prompt`` can cut ``prompt`` to: a conversation's last turn with its
    content emptied (the template still renders BOS, role headers and the generation prompt around
    it), or the empty plain text (the tokenizer's BOS stays)."""
    if is_conversational(prompt):
        last = prompt[-1]
        return [{**last, "content": ""}] if isinstance(last.get("content"), str) else [last]
    return ""


def dpo_min_max_length(tokenizer, row: dict[str, Any], long_replies: str) -> tuple[int, int]:
    """(the ids of ``row``'s ``least_prompt``, the smallest ``max_length`` that keeps the row) under
    ``long_replies``: "drop" needs the least prompt and the whole longer reply (``dpo_fits``);
    "truncate" needs that, or a least prompt within half of ``max_length`` and at least one reply
    token (``fit_prompt``'s ``prompt_budget``, then ``cut_replies``), whichever is smaller."""
    ids = dpo_ids(tokenizer, {**row, "prompt": least_prompt(row["prompt"])})
    least = len(ids["prompt_ids"])
    whole = least + max(len(ids["chosen_ids"]), len(ids["rejected_ids"]), 1)
    if long_replies == "truncate":
        return least, min(whole, max(2 * least, least + 1))
    return least, whole


def _cut_points(text: str) -> list[int]:
    """Offsets ``text`` may be cut at from the left, ascending from 0 to ``len(text)``: word starts,
    and every character inside a run of more than 24 non-space characters (a URL, code, CJK)."""
    points = {0, len(text)}
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        j = i
        while j < n and not text[j].isspace():
            j += 1
        points.add(i)
        if j - i > 24:
            points.update(range(i + 1, j))
        i = j
    return sorted(points)


def _cut_start(text: str, fits) -> str | None:
    """The longest end of ``text``, cut at a word start (``_cut_points``), for which ``fits`` holds;
    None when not even the empty text fits. Every answer is one ``fits`` said yes to: a binary search
    over the cut points, never a length estimate."""
    points = _cut_points(text)
    if not fits(""):
        return None
    lo, hi = -1, len(points) - 1  # points[hi] is known to fit ("" at len(text)); lo, if >= 0, not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(text[points[mid] :]):
            hi = mid
        else:
            lo = mid
    return text[points[hi] :]


def fit_prompt(
    tokenizer, row: dict[str, Any], max_length: int, *, prompt_budget: int | None = None
) -> dict[str, Any] | None:
    """``row`` with a prompt short enough that its ``dpo_ids`` keep the whole longer reply, end token
    included, within ``max_length`` (``dpo_fits``: checked on the ids, never estimated). With
    ``prompt_budget``, the prompt is fitted to at most that many tokens instead (for a row whose reply
    cannot fit whole: ``cut_replies`` then cuts the end of the reply).

    A prompt that is too long loses, in turn: its earliest turns (conversational; a turn left leading
    with the assistant goes too), then the start of the earliest remaining user turn's content, cut
    at a word start (a plain-text prompt: the start of the text). The template's structure (BOS, role
    headers, generation prompt; a base model's transcript labels and cue) and the end of the prompt
    stay. None when the row cannot fit even with that turn (or plain prompt) emptied: its reply alone
    is too long; the caller decides."""

    def fits(prompt) -> bool:
        ids = dpo_ids(tokenizer, {**row, "prompt": prompt})
        if prompt_budget is None:
            return dpo_fits(ids, max_length)
        return len(ids["prompt_ids"]) <= min(prompt_budget, max_length - 1)

    prompt = row["prompt"]
    if fits(prompt):
        return row
    if is_conversational(prompt):
        turns = list(prompt)
        while len(turns) > 1 and not fits(turns):
            turns = turns[1:]
            while len(turns) > 1 and turns[0].get("role") == "assistant":
                turns = turns[1:]
        if fits(turns):
            return {**row, "prompt": turns}
        at = next((i for i, m in enumerate(turns) if m.get("role") == "user"), 0)
        content = turns[at].get("content")
        if not isinstance(content, str):
            return None

        def with_content(text: str) -> list[dict[str, Any]]:
            return [*turns[:at], {**turns[at], "content": text}, *turns[at + 1 :]]

        cut = _cut_start(content, lambda text: fits(with_content(text)))
        return None if cut is None else {**row, "prompt": with_content(cut)}
    if not isinstance(prompt, str):
        return None
    cut = _cut_start(prompt, fits)
    return None if cut is None else {**row, "prompt": cut}
