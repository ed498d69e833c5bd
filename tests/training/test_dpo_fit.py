"""DPO prompt fitting across the zoo: whatever the prompt's length, the rows TRL's ``DPOTrainer``
trains on (the ids the runner hands it, after TRL's "fully truncated" filter) keep the whole longer reply,
end token included, within ``max_length``; no row is lost silently; ``train_pairs`` counts the rows
TRL actually trains on.

The checks read TRL's processed dataset (``trainer.train_dataset``), not our own idea of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generation.zoo import ZOO
from tests.training.conftest import conv_row, family_rows, runner_config, write_jsonl
from training.runners import dpo
from training.runners.models import load_tokenizer

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

MAX_LENGTH = 64
LONG = "Please explain in detail " + "why the sky is blue and the sea is green " * 8 + "ENDMARK"
MEDIUM = "Tell me about the weather over the hills and the rivers in the far north today"


class _Stop(Exception):
    pass


GREETING_THEN_LONG = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello there, how can I help you today?"},
    {"role": "user", "content": LONG},
]


def _user(text):
    return [{"role": "user", "content": text}]


def _rows(name: str) -> list[dict]:
    """Short and long prompts of every shape the family takes."""
    return family_rows(
        name,
        plain=[
            {"prompt": "What is 2+2?", "chosen": "4.", "rejected": "Fish."},
            {"prompt": LONG, "chosen": "Because of Rayleigh scattering of light.", "rejected": "No."},
            {"prompt": "Question: " + LONG + "\nAnswer:", "chosen": "Scattering.", "rejected": "Dunno."},
            {"prompt": MEDIUM + " " + MEDIUM, "chosen": "It is sunny and warm there.", "rejected": "No."},
        ],
        chat=[
            conv_row(_user("Is the sky blue?"), "Yes it is.", "No."),
            conv_row(_user(LONG), "Because of Rayleigh scattering of light.", "No."),
            conv_row(GREETING_THEN_LONG, "Because of Rayleigh scattering.", "No."),
            conv_row(
                [
                    {"role": "user", "content": MEDIUM},
                    {"role": "assistant", "content": "It is sunny, " * 6},
                    {"role": "user", "content": "And tomorrow?"},
                ],
                "Rain, most likely.",
                "Who knows.",
            ),
        ],
        system=conv_row(
            [{"role": "system", "content": "You are terse."}, {"role": "user", "content": LONG}],
            "Scattering.",
            "Dunno.",
        ),
    )


def _cfg(base: str, data: str, out: Path, **extra):
    values = {"max_length": MAX_LENGTH, "eval_fraction": 0, "max_steps": 1, "learning_rate": 1e-4, **extra}
    return runner_config("dpo", base, data, out, **values)


def _trl_dataset(monkeypatch, cfg):
    """The train dataset TRL's DPOTrainer trains on (as handed to it, filtered), and its tokenizer;
    training is stopped before the first step."""
    import trl

    seen = {}

    def stop(self, *args, **kwargs):
        seen["ds"] = self.train_dataset
        seen["tok"] = self.processing_class
        raise _Stop

    monkeypatch.setattr(trl.DPOTrainer, "train", stop)
    with pytest.raises(_Stop):
        dpo.run(cfg)
    return seen["ds"], seen["tok"]


def _end_id(tok, name: str) -> int:
    token = ZOO[name].end_of_turn or tok.eos_token
    return tok.convert_tokens_to_ids(token)


@pytest.mark.parametrize("name", list(ZOO))
def test_every_reply_keeps_its_end_token_within_max_length(zoo_model, tmp_path, monkeypatch, name):
    rows = _rows(name)
    cfg = _cfg(zoo_model(name), write_jsonl(tmp_path / "pairs.jsonl", rows), tmp_path / "out")
    ds, tok = _trl_dataset(monkeypatch, cfg)
    assert len(ds) == len(rows), f"TRL trains on {len(ds)} of {len(rows)} rows"
    end = _end_id(tok, name)
    for ex in ds:
        prompt = tok.decode(ex["prompt_ids"])
        for key in ("chosen_ids", "rejected_ids"):
            total = len(ex["prompt_ids"]) + len(ex[key])
            assert total <= MAX_LENGTH, f"{name}: {total} tokens > {MAX_LENGTH}; keep_start cuts {prompt!r}"
            # ending AT the end token: nothing the template renders after it (Qwen's and Gemma's
            # newline, Phi-3's newline and EOS) is trained on (test_dpo_ids)
            assert ex[key] and ex[key][-1] == end, (
                f"{name} {key}: {tok.decode(ex[key])!r} does not end with the end token"
            )
        if ZOO[name].needs_bos:
            assert ex["prompt_ids"][0] == tok.bos_token_id, f"{name}: the prompt lost its BOS: {prompt!r}"
    long_prompts = [tok.decode(ex["prompt_ids"]) for ex in ds if "ENDMARK" in tok.decode(ex["prompt_ids"])]
    # Every long row kept the end of its last user turn (the question the reply answers) ...
    n_long = sum(1 for r in rows if "ENDMARK" in json.dumps(r["prompt"]))
    assert len(long_prompts) == n_long
    # ... and the template's structure: the generation prompt is still there.
    if ZOO[name].chat:
        probe = tok.apply_chat_template(_user("QQQ"), tokenize=False, add_generation_prompt=True)
        cue = probe[probe.index("QQQ") + 3 :].strip()
        assert all(p.rstrip().endswith(cue) for p in long_prompts), (cue, long_prompts)


@pytest.mark.parametrize("name", list(ZOO))
def test_a_fitted_prompt_is_cut_no_more_than_needed(zoo_model, tmp_path, monkeypatch, name):
    """The cut is made by words on the text and checked by re-tokenising: the longest sequence ends up
    close to max_length, not far under it."""
    rows = [r for r in _rows(name) if "ENDMARK" in json.dumps(r["prompt"])]
    cfg = _cfg(zoo_model(name), write_jsonl(tmp_path / "pairs.jsonl", rows), tmp_path / "out")
    ds, _ = _trl_dataset(monkeypatch, cfg)
    assert len(ds) == len(rows)
    for ex in ds:
        total = len(ex["prompt_ids"]) + max(len(ex["chosen_ids"]), len(ex["rejected_ids"]))
        assert MAX_LENGTH - 8 <= total <= MAX_LENGTH


def test_probe_five_rows_three_long_train_on_five(zoo_model, tmp_path, monkeypatch):
    """The probe's repro (qwen, max_length 64): 3 of 5 rows have one ~90-token user turn."""
    import trl

    long_q = "Please explain in detail " + "why the sky is blue and the sea is green " * 8
    rows = [
        conv_row(_user("Is the sky blue?"), "Yes.", "No."),
        conv_row(_user("What is 2+2?"), "4.", "Fish."),
        conv_row(_user(long_q + "1"), "Rayleigh scattering.", "No."),
        conv_row(_user(long_q + "2"), "Because of scattering.", "Dunno."),
        conv_row(_user(long_q + "3"), "Scattering.", "No."),
    ]
    seen = {}
    original = trl.DPOTrainer.train

    def spy(self, *args, **kwargs):
        seen["trl"] = len(self.train_dataset)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(trl.DPOTrainer, "train", spy)
    cfg = _cfg(zoo_model("qwen"), write_jsonl(tmp_path / "pairs.jsonl", rows), tmp_path / "out")
    final = dpo.run(cfg)
    assert seen["trl"] == 5
    assert final["train_pairs"] == seen["trl"] == 5
    assert final["dropped_too_long"] == 0


@pytest.mark.parametrize("long_replies", ["drop", "truncate"])
@pytest.mark.parametrize("name", ["qwen", "base"])
def test_a_reply_longer_than_max_length_is_dropped_or_truncated_and_counted(
    zoo_model, tmp_path, monkeypatch, name, long_replies
):
    """A row whose reply alone exceeds max_length cannot fit with any prompt. "drop" leaves it out;
    "truncate" (the default: TRL's own behaviour, and the longest replies are not lost) keeps the
    end of its prompt within half of max_length and the end of the reply is cut. Either is counted, and
    train_pairs is what TRL trains on."""
    import trl

    essay = "This is a very long answer that goes on and on about many things " * 6
    if ZOO[name].chat:
        rows = [
            conv_row(_user("Is the sky blue?"), "Yes.", "No."),
            conv_row(_user("What is 2+2?"), "4.", "Fish."),
            conv_row(_user("Tell me everything."), essay, "No."),
        ]
    else:
        rows = [
            {"prompt": "Is the sky blue?", "chosen": "Yes.", "rejected": "No."},
            {"prompt": "What is 2+2?", "chosen": "4.", "rejected": "Fish."},
            {"prompt": "Tell me everything.", "chosen": "Sure.", "rejected": essay},
        ]
    seen = {}
    original = trl.DPOTrainer.train

    def spy(self, *args, **kwargs):
        seen["ds"] = self.train_dataset
        return original(self, *args, **kwargs)

    monkeypatch.setattr(trl.DPOTrainer, "train", spy)
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    final = dpo.run(_cfg(zoo_model(name), data, tmp_path / "out", long_replies=long_replies))
    if long_replies == "drop":
        assert (final["dropped_too_long"], final["truncated_replies"]) == (1, 0)
        assert final["train_pairs"] == len(seen["ds"]) == 2
        for ex in seen["ds"]:
            assert len(ex["prompt_ids"]) + max(len(ex["chosen_ids"]), len(ex["rejected_ids"])) <= MAX_LENGTH
        return
    assert (final["dropped_too_long"], final["truncated_replies"]) == (0, 1)
    assert final["train_pairs"] == len(seen["ds"]) == 3
    long_row = max(seen["ds"], key=lambda ex: max(len(ex["chosen_ids"]), len(ex["rejected_ids"])))
    assert 0 < len(long_row["prompt_ids"]) <= MAX_LENGTH // 2
    tok = load_tokenizer(zoo_model(name))
    assert "everything" in tok.decode(long_row["prompt_ids"])  # the prompt's end is kept


def test_a_conversation_on_a_base_model_keeps_its_transcript_labels(zoo_model, tmp_path, monkeypatch):
    """No chat template: the conversation becomes a "Human: ...\\n\\nAssistant:" transcript; fitting
    drops earlier turns and cuts the user turn's text, never the labels or the cue."""
    rows = [
        conv_row(_user("Is the sky blue?"), "Yes it is.", "No."),
        conv_row(GREETING_THEN_LONG, "Because of Rayleigh scattering.", "No."),
    ]
    cfg = _cfg(zoo_model("base"), write_jsonl(tmp_path / "pairs.jsonl", rows), tmp_path / "out")
    ds, tok = _trl_dataset(monkeypatch, cfg)
    assert len(ds) == 2
    ex = ds[1]
    prompt = tok.decode(ex["prompt_ids"])
    assert prompt.startswith("<s>Human: ") and prompt.endswith("ENDMARK\n\nAssistant:"), prompt
    assert "Hello there" not in prompt
    assert ex["chosen_ids"][-1] == tok.eos_token_id
    assert len(ex["prompt_ids"]) + len(ex["chosen_ids"]) <= MAX_LENGTH


def test_too_long_held_out_rows_are_counted_and_all_too_long_is_refused(zoo_model, tmp_path):
    from training.runners.protocol import DataError

    essay = "This is a very long answer that goes on and on about many things " * 6
    short = [conv_row(_user(f"Question {i}?"), "Yes.", "No.") for i in range(3)]
    held = [conv_row(_user("Is it?"), "Yes.", "No."), conv_row(_user("Tell me everything."), essay, "No.")]
    base = zoo_model("qwen")
    cfg = _cfg(
        base,
        write_jsonl(tmp_path / "train.jsonl", short),
        tmp_path / "out",
        eval_dataset_path=write_jsonl(tmp_path / "eval.jsonl", held),
    )
    final = dpo.run(cfg)
    assert final["dropped_too_long"] == 0 and final["truncated_replies_eval"] == 1  # kept, truncated
    final = dpo.run(
        _cfg(
            base,
            cfg.dataset_path,
            tmp_path / "out1",
            eval_dataset_path=cfg.eval_dataset_path,
            long_replies="drop",
        )
    )
    assert final["dropped_too_long"] == 0 and final["dropped_too_long_eval"] == 1
    assert final["train_pairs"] == 3 and "eval_loss" in final
    too_long = [conv_row(_user("Tell me everything."), essay, "No.")] * 2
    with pytest.raises(DataError, match="No training pair fits max_length=64"):
        dpo.run(
            _cfg(base, write_jsonl(tmp_path / "long.jsonl", too_long), tmp_path / "out2", long_replies="drop")
        )


@pytest.mark.parametrize("long_replies", ["drop", "truncate"])
@pytest.mark.parametrize("name", ["qwen", "llama3", "base"])
def test_a_max_length_no_pair_fits_is_refused_with_the_true_reason_and_the_length_that_fits(
    zoo_model, tmp_path, name, long_replies
):
    """With a max_length below what the template renders around an emptied prompt (BOS, role
    headers, generation prompt: 14-18 tokens for the zoo's tokenizers), no pair fits although every
    reply is 3-5 tokens. The refusal must not blame the replies ("a reply longer than that on its
    own", the message before) and must name the max_length that keeps a pair: one token less is
    refused, that one trains."""
    import re

    from training.runners.protocol import DataError

    essay = "This is a very long answer that goes on and on about many things " * 6
    if ZOO[name].chat:
        rows = [conv_row(_user("2+2?"), "4.", "Fish."), conv_row(_user("Is the sky blue?"), "Yes.", "No.")]
    else:  # plain text: the prompt can go, the BOS stays; the reply is what does not fit
        rows = [{"prompt": "Tell me.", "chosen": essay, "rejected": "No."}]
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    # base: the BOS alone is the least prompt; "truncate" then fits any reply from max_length=2 on
    max_length = 12 if ZOO[name].chat else 32 if long_replies == "drop" else 1
    with pytest.raises(DataError) as refused:
        dpo.run(
            _cfg(zoo_model(name), data, tmp_path / "out", max_length=max_length, long_replies=long_replies)
        )
    message = str(refused.value)
    if ZOO[name].chat:
        assert "reply longer than that on its own" not in message, message
        assert "prompt" in message, message
    found = re.search(r"max_length=(\d+) or more", message)
    assert found, message
    needed = int(found.group(1))
    assert needed > max_length
    with pytest.raises(DataError, match="No training pair fits"):
        dpo.run(
            _cfg(zoo_model(name), data, tmp_path / "o1", max_length=needed - 1, long_replies=long_replies)
        )
    final = dpo.run(
        _cfg(zoo_model(name), data, tmp_path / "o2", max_length=needed, long_replies=long_replies)
    )
    assert final["train_pairs"] >= 1


@pytest.mark.parametrize("name", ["llama3", "qwen", "base"])
def test_a_pair_whose_replies_are_the_same_tokens_is_dropped_and_counted(zoo_model, tmp_path, name):
    """A pair whose chosen and rejected ids are the same teaches nothing (its DPO gradient is 0) and
    is a tie in the held-out accuracy (0.5, margin 0), like a pair with the same text, which
    ``load_preferences`` drops. Two ways text that differs gives the same ids: a template that trims
    the reply (Llama-3's, Gemma's ``| trim``: "Yes." and "Yes. "), and two long replies whose cut
    keeps only the start they share (``long_replies="truncate"``). Before, both were trained on and
    scored as held-out ties (llama3: train_pairs 4, eval_pairs 4)."""
    essay = "This is a very long answer that goes on and on about many things " * 6
    if ZOO[name].chat:
        rows = [
            conv_row(_user("Is the sky blue?"), "Yes it is.", "No."),
            conv_row(_user("2+2?"), "4.", "Fish."),
            conv_row(_user("Tell me."), essay + "Alpha.", essay + "Beta."),
        ]
        if name == "llama3":
            rows.append(conv_row(_user("Is it?"), "Yes.", "Yes. "))
    else:
        rows = [
            {"prompt": "Is the sky blue?", "chosen": "Yes it is.", "rejected": "No."},
            {"prompt": "2+2?", "chosen": "4.", "rejected": "Fish."},
            {"prompt": "Tell me.", "chosen": essay + "Alpha.", "rejected": essay + "Beta."},
        ]
    same = len(rows) - 2
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    final = dpo.run(_cfg(zoo_model(name), data, tmp_path / "out", eval_dataset_path=data))
    assert final["train_pairs"] == 2, final
    assert final["eval_pairs"] == 2, final
    assert final["dropped_identical_pairs"] == same and final["dropped_identical_pairs_eval"] == same, final
    assert final["truncated_replies"] == 0 and final["dropped_too_long"] == 0, final
