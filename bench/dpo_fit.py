"""What DPO trains on when prompts are long: rows kept whole, cut or dropped, before and after
``training.runners.data.fit_prompt`` learned to check each fitted row's own ids. Prints figures;
asserts nothing.

Usage:
    .venv/bin/python bench/dpo_fit.py [--rows 400] [--max-lengths 128 256] [--families llama3 qwen gemma mistral]

Data: the shared HH-RLHF harmless-base sample (../shared/data/hh-rlhf/harmless-base-sample.jsonl.gz)
read as conversations (``training.runners.data.load_preferences``), the first ``--rows`` pairs.
Models: the zoo's tokenizers (``generation.zoo``: tiny byte-level BPE vocabularies, so a text takes
more tokens than with a real 128k vocabulary; the shares, not the lengths, are the point).

For each family and ``max_length`` every row is put through a prompt fitter, then tokenised as the
DPO runner hands it to TRL 1.16's ``DPOTrainer`` (``training.runners.data.dpo_ids``: TRL no longer
tokenises text itself) and counted as:
    whole    prompt + each reply within max_length: TRL trains on it as it is
    cut      kept, but the end of a reply (its end token too) is cut, as TRL's keep-start
             truncation would (the runner: ``cut_replies``)
    dropped  TRL drops it, uncounted ("fully truncated": the prompt alone fills max_length)
    left out the runner leaves it out (its reply alone is longer than max_length), counted in the
             run's final metrics as ``dropped_too_long``
Fitters: ``before`` is the runner until 2026-12-01 (whole earliest turns only, a budget from our own
token count), reimplemented here; ``truncate`` and ``drop`` are the runner now (``fit_prompt``, then
for a reply that cannot fit whole ``long_replies``: the default "truncate" fits the prompt within
half of max_length and the end of the reply is cut, counted as ``truncated_replies``; "drop" leaves
the row out). ``ms/row`` is the fitter's time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
HH = ROOT.parent / "shared" / "data" / "hh-rlhf" / "harmless-base-sample.jsonl.gz"


def _setup() -> None:
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()


def old_fit_prompt(tokenizer, row: dict, max_length: int) -> dict:
    """The fitter before 2026-12-01: drop whole earliest turns while the prompt's ids exceed
    ``max_length`` minus the longer reply's ids (counted by ``core.formatting``, not as TRL counts)."""
    from core.formatting import completion_ids, prompt_ids

    longest = max(len(completion_ids(tokenizer, row["prompt"], row[k])) for k in ("chosen", "rejected"))
    budget = max(max_length - longest, 1)
    turns = list(row["prompt"])
    while len(turns) > 1 and len(prompt_ids(tokenizer, turns)) > budget:
        turns = turns[1:]
        while len(turns) > 1 and turns[0].get("role") == "assistant":
            turns = turns[1:]
    return {**row, "prompt": turns}


def trl_outcome(tokenizer, row: dict, max_length: int) -> str:
    """whole, cut or dropped: what becomes of ``row`` in TRL 1.16's DPOTrainer, handed its ids
    (``dpo_ids``) as the runner hands them."""
    from training.runners.data import dpo_fits, dpo_ids

    ids = dpo_ids(tokenizer, row)
    if len(ids["prompt_ids"]) >= max_length:
        return "dropped"
    return "whole" if dpo_fits(ids, max_length) else "cut"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--max-lengths", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--families", nargs="+", default=["llama3", "qwen", "gemma", "mistral"])
    args = parser.parse_args()
    if not HH.is_file():
        sys.exit(f"The HH-RLHF sample is not at {HH}.")
    _setup()
    from generation.zoo import build_zoo_model
    from training.runners.data import fit_prompt, load_preferences
    from training.runners.models import load_tokenizer

    rows = load_preferences(str(HH)).rows[: args.rows]
    rows = [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows]
    print(f"{len(rows)} HH-RLHF pairs; outcomes on the ids the DPO runner hands TRL 1.16's DPOTrainer\n")
    print(
        f"{'family':8} {'max_len':>7} {'fitter':8} {'whole':>6} {'cut':>5} {'dropped':>7} {'left out':>8} {'ms/row':>7}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families:
            tok = load_tokenizer(str(build_zoo_model(family, Path(tmp) / family)))
            for max_length in args.max_lengths:
                for name in ("before", "truncate", "drop"):
                    counts = {"whole": 0, "cut": 0, "dropped": 0, "left out": 0}
                    started = time.perf_counter()
                    fitted = []
                    for row in rows:
                        if name == "before":
                            out = old_fit_prompt(tok, row, max_length)
                        else:
                            out = fit_prompt(tok, row, max_length)
                            if out is None and name == "truncate":
                                out = fit_prompt(tok, row, max_length, prompt_budget=max_length // 2)
                        fitted.append(out)
                    ms = (time.perf_counter() - started) * 1000 / len(rows)
                    for out in fitted:
                        counts["left out" if out is None else trl_outcome(tok, out, max_length)] += 1
                    print(
                        f"{family:8} {max_length:>7} {name:8} {counts['whole']:>6} {counts['cut']:>5} "
                        f"{counts['dropped']:>7} {counts['left out']:>8} {ms:>7.1f}"
                    )


if __name__ == "__main__":
    main()
