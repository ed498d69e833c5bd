"""DPO trains on the ids its held-out figures read, for every zoo family.

A (prompt, reply) is one sequence everywhere (``core.formatting.split_ids``): the template's
conversation split at the generation prompt, ending AT the family's end-of-turn token, nothing the
template renders after it (Qwen's and Gemma's newline, Phi-3's newline and ``<|endoftext|>``). TRL's
``DPOTrainer`` must train on exactly those ids, and the held-out accuracy/margin (``dpo_reference``/
``dpo_figures``) must read exactly the same ones: before, TRL tokenised conversational rows itself
and trained on the 1-2 tokens after the end of turn that the held-out figures (and generation) never
see.

The checks read TRL's processed datasets (``trainer.train_dataset``/``eval_dataset``) and, for the
held-out side, compare TRL's own precomputed reference log-probs of each held-out row with the ones
our figures compute: equal only if both read the same prompt and the same completion tokens."""

from __future__ import annotations

import json

import pytest

from core.formatting import split_ids
from generation.zoo import ZOO
from tests.training.conftest import conv_row, family_rows, runner_config, write_jsonl
from tests.training.test_dpo_fit import _rows
from training.runners import dpo

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

MAX_LENGTH = 64  # the long rows' (test_dpo_fit's)
SHORT_MAX_LENGTH = 256  # the short rows fit it whole


class _Stop(Exception):
    pass


def _short_rows(name: str) -> list[dict]:
    """Rows that fit ``MAX_LENGTH`` as they are: no prompt fitting, no reply cut."""
    return family_rows(
        name,
        plain=[
            {"prompt": "What is 2+2?", "chosen": "4.", "rejected": "Fish."},
            {"prompt": "Question: is the sky blue?\nAnswer:", "chosen": "Yes.", "rejected": "No."},
        ],
        chat=[
            conv_row([{"role": "user", "content": "Is the sky blue?"}], "Yes it is.", "No."),
            conv_row(
                [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello!"},
                    {"role": "user", "content": "And tomorrow?"},
                ],
                "Rain, most likely.",
                "Who knows.",
            ),
        ],
        system=conv_row(
            [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "2+2?"}], "4.", "Fish."
        ),
    )


def _run_until_training(monkeypatch, cfg):
    """TRL's processed train and eval datasets, its tokenizer, and the held-out reference log-probs
    our figures computed (``dpo_reference``); stopped before the first training step."""
    import trl

    seen = {}
    reference = dpo.dpo_reference

    def spy_reference(*args, **kwargs):
        seen["reference"] = reference(*args, **kwargs)
        return seen["reference"]

    def stop(self, *args, **kwargs):
        seen["train"], seen["eval"] = self.train_dataset, self.eval_dataset
        seen["tok"] = self.processing_class
        raise _Stop

    monkeypatch.setattr(dpo, "dpo_reference", spy_reference)
    monkeypatch.setattr(trl.DPOTrainer, "train", stop)
    with pytest.raises(_Stop):
        dpo.run(cfg)
    return seen


def _cfg(base, data, out, max_length=MAX_LENGTH, **extra):
    values = {
        "max_length": max_length,
        "eval_dataset_path": data,
        "max_steps": 1,
        "precompute_ref_log_probs": True,  # TRL's own reference log-probs of each row, to compare
        **extra,
    }
    return runner_config("dpo", base, data, out, **values)


def _end_id(tok, name: str) -> int:
    return tok.convert_tokens_to_ids(ZOO[name].end_of_turn or tok.eos_token)


def _assert_same_held_out_log_probs(seen, n_rows: int) -> None:
    """TRL's reference log-prob of each held-out reply (the policy before training, summed over the
    completion tokens it trains on) equals the one our held-out figures compute for that row."""
    ds, ours = seen["eval"], seen["reference"]
    assert len(ds) == n_rows and len(ours["chosen"]) == len(ours["rejected"]) == n_rows
    for key in ("chosen", "rejected"):
        trl_logps = list(ds[f"ref_{key}_logps"])
        assert trl_logps == pytest.approx(ours[key], abs=1e-3), (
            f"{key}: TRL's held-out log-probs {trl_logps} are not our figures' {ours[key]}: "
            "the two read different tokens"
        )


@pytest.mark.parametrize("name", list(ZOO))
def test_trl_trains_on_the_ids_the_held_out_figures_read(zoo_model, tmp_path, monkeypatch, name):
    rows = _short_rows(name)
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    cfg = _cfg(zoo_model(name), data, tmp_path / "out", max_length=SHORT_MAX_LENGTH)
    seen = _run_until_training(monkeypatch, cfg)
    tok, end = seen["tok"], _end_id(seen["tok"], name)
    for split in ("train", "eval"):
        ds = seen[split]
        assert len(ds) == len(rows), f"{split}: TRL kept {len(ds)} of {len(rows)} rows"
        for row, ex in zip(rows, ds, strict=True):
            prompt, chosen = split_ids(tok, row["prompt"], row["chosen"])
            prompt_r, rejected = split_ids(tok, row["prompt"], row["rejected"])
            assert prompt == prompt_r
            assert len(prompt) + max(len(chosen), len(rejected)) <= SHORT_MAX_LENGTH  # nothing to fit
            assert ex["prompt_ids"] == prompt, (
                f"{name} {split} prompt: TRL {tok.decode(ex['prompt_ids'])!r}, ours {tok.decode(prompt)!r}"
            )
            for key, ours in (("chosen_ids", chosen), ("rejected_ids", rejected)):
                got = ex[key]
                if ZOO[name].chat:
                    assert ours[-1] == end
                    assert got and got[-1] == end, (
                        f"{name} {split} {key}: TRL trains on {tok.decode(got[got.index(end) + 1 :])!r} "
                        f"after the end of turn {tok.convert_ids_to_tokens(end)!r}"
                        if end in got
                        else f"{name} {split} {key}: {tok.decode(got)!r} has no end of turn"
                    )
                assert got == ours, (
                    f"{name} {split} {key}: TRL {tok.decode(got)!r}, ours {tok.decode(ours)!r}"
                )
    _assert_same_held_out_log_probs(seen, len(rows))


@pytest.mark.parametrize("name", list(ZOO))
def test_fitted_and_truncated_rows_are_read_alike_by_training_and_the_held_out_figures(
    zoo_model, tmp_path, monkeypatch, name
):
    """Long prompts (fitted to ``max_length``) and a reply longer than ``max_length`` (the default
    ``long_replies="truncate"``: the prompt within half, the end of the reply cut): the held-out
    figures read each row exactly as TRL trains on it, not a prompt truncated another way."""
    essay = "This is a very long answer that goes on and on about many things " * 6
    rows = _rows(name)
    if ZOO[name].chat:
        rows.append(conv_row([{"role": "user", "content": "Tell me everything."}], essay, "No."))
    else:
        rows.append({"prompt": "Tell me everything.", "chosen": "Sure.", "rejected": essay})
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    seen = _run_until_training(monkeypatch, _cfg(zoo_model(name), data, tmp_path / "out"))
    assert sum("ENDMARK" in json.dumps(r["prompt"]) for r in rows) >= 2  # prompts that need fitting
    for ex in seen["train"]:
        for key in ("chosen_ids", "rejected_ids"):
            assert len(ex["prompt_ids"]) + len(ex[key]) <= MAX_LENGTH  # nothing left for TRL to cut
    _assert_same_held_out_log_probs(seen, len(rows))


def test_trl_dpo_trainer_itself_takes_no_tokenised_rows(zoo_model, tmp_path):
    """Why the runner overrides ``DPOTrainer._prepare_dataset``: TRL 1.16's DPOTrainer has no
    pre-tokenised input (it extracts and tokenises ``prompt``/``chosen``/``rejected`` text whatever
    else a row holds). If this starts failing, TRL takes tokenised rows itself: hand them to it
    without the override."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    path = zoo_model("qwen")
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    rows = Dataset.from_list([{"prompt_ids": [1, 2, 3], "chosen_ids": [4, 5], "rejected_ids": [6]}])
    args = DPOConfig(output_dir=str(tmp_path / "o"), use_cpu=True, report_to=[])
    with pytest.raises(KeyError, match="chosen"):
        DPOTrainer(model=model, args=args, train_dataset=rows, processing_class=tok)


def test_a_trl_that_prepares_datasets_otherwise_is_refused(monkeypatch):
    import trl

    from training.runners.protocol import ModelError

    assert dpo.tokenized_trainer_class().__mro__[1] is trl.DPOTrainer
    monkeypatch.setattr(trl.DPOTrainer, "_prepare_dataset", lambda self, dataset, tokenizer, args: dataset)
    with pytest.raises(ModelError, match="prepares datasets differently"):
        dpo.tokenized_trainer_class()
