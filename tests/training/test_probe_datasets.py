"""Probe: a malformed preference file is refused with the file, the line and the field, before any
model is loaded. Before, a missing ``chosen`` said only "Every row needs both chosen and rejected."
(no line), a ``margin`` of "x" crashed with ``ValueError: could not convert string to float``, a
margin of NaN was kept (a NaN loss), and a ``chosen`` of 5 or a prompt of ``[1, 2]`` was accepted and
failed only once the models were loaded ("A response must be a string ...", no line)."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from training.runners.data import load_preferences
from training.runners.protocol import DataError

OK = {"prompt": "Q?", "chosen": "yes", "rejected": "no"}


def _file(tmp_path, lines: list[str]) -> str:
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            {"prompt": "Q?", "rejected": "no"},
            "pairs.jsonl line 3: every row needs both chosen and rejected (chosen missing)",
        ),
        (
            {"prompt": "Q?", "chosen": "yes", "rejected": None},
            "line 3: every row needs both chosen and rejected (rejected missing)",
        ),
        ({**OK, "chosen": 5}, "line 3: chosen must be a text or a non-empty list of messages, not int"),
        ({**OK, "prompt": [1, 2]}, "line 3: prompt message 1 must be an object with a text role and content"),
        ({**OK, "rejected": [{"role": "assistant"}]}, "line 3: rejected message 1 must be an object"),
        ({**OK, "chosen": []}, "line 3: chosen must be a text or a non-empty list of messages, not list"),
        ({**OK, "margin": "x"}, "line 3: margin must be a finite number (or absent), not 'x'"),
        ({**OK, "margin": True}, "line 3: margin must be a finite number"),
    ],
)
def test_a_bad_row_is_refused_by_line_and_field(tmp_path, bad, message):
    # line 2 is blank: the line number is the file's, not the row's
    path = _file(tmp_path, [json.dumps(OK), "", json.dumps(bad)])
    with pytest.raises(DataError) as err:
        load_preferences(path)
    assert message in err.value.message


def test_a_nan_margin_is_refused(tmp_path):
    path = _file(tmp_path, [json.dumps(OK), '{"prompt": "Q", "chosen": "a", "rejected": "b", "margin": NaN}'])
    with pytest.raises(DataError, match=r"pairs\.jsonl line 2: margin must be a finite number"):
        load_preferences(path)


def test_train_names_the_line_before_loading_a_model(tmp_path, monkeypatch, tiny):
    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded despite a bad dataset")

    monkeypatch.setattr("training.runners.models.load_tokenizer", no_model)
    path = _file(tmp_path, [json.dumps(OK), json.dumps({**OK, "margin": "x"})])
    out = tmp_path / "out"
    with pytest.raises(CommandError, match=r"pairs\.jsonl line 2: margin must be a finite number"):
        call_command(
            "train", "reward", "--dataset", path, "--base-model", tiny, "--out", str(out),
            "--config", '{"use_cpu": true}',
        )  # fmt: skip
    assert not out.exists() and not list(tmp_path.glob("out.tmp-*"))


def test_well_formed_rows_still_load(tmp_path):
    conv = {
        "prompt": [{"role": "user", "content": "Q?"}],
        "chosen": [{"role": "assistant", "content": "yes"}],
        "rejected": [{"role": "assistant", "content": "no"}],
        "margin": 2,
    }
    data = load_preferences(_file(tmp_path, [json.dumps(conv), json.dumps({**conv, "margin": None})]))
    assert [r["margin"] for r in data.rows] == [2.0, 0.0] and data.conversational
