"""Probe: malformed unpaired (KTO) rows and prompt files. Before, a KTO row without ``completion``
crashed with ``KeyError: 'completion'`` (what ``train`` printed), a completion of 5 was reported as
"pair 1: chosen ..." (not the file's line or field), and a prompt file (PPO/RLOO/GRPO) with a
prompt of ``{"a": 1}`` was accepted and failed once the models were loaded. Now each is a DataError
naming the file's line and the field."""

from __future__ import annotations

import json

import pytest

from training.runners.data import load_preferences, load_prompts
from training.runners.protocol import DataError


def _file(tmp_path, rows: list) -> str:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            {"prompt": "a", "label": False},
            "rows.jsonl line 3: every unpaired (KTO) row needs prompt, completion and label (completion missing)",
        ),
        ({"prompt": "a", "completion": 5, "label": False}, "rows.jsonl line 3: completion must be a text"),
        ({"prompt": {"a": 1}, "completion": "b", "label": False}, "rows.jsonl line 3: prompt must be a text"),
    ],
)
def test_a_bad_unpaired_row_is_named_by_line_and_field(tmp_path, bad, message):
    path = _file(tmp_path, [{"prompt": "a", "completion": "good", "label": True}, "", bad])
    with pytest.raises(DataError) as err:
        load_preferences(path)
    assert message in err.value.message


def test_a_bad_prompt_row_is_named_by_line_and_field(tmp_path):
    path = _file(tmp_path, [{"prompt": "fine?"}, {"prompt": {"a": 1}}])
    with pytest.raises(
        DataError,
        match=r"rows\.jsonl line 2: prompt must be a text or a non-empty list of messages, not dict",
    ):
        load_prompts(path)
    path = _file(
        tmp_path, [{"messages": [{"role": "user", "content": "hi"}]}, {"messages": [{"role": "user"}]}]
    )
    with pytest.raises(
        DataError, match=r"line 2: messages message 1 must be an object with a text role and content"
    ):
        load_prompts(path)


def test_good_unpaired_rows_and_prompts_still_load(tmp_path):
    kto = [
        {"prompt": "a", "completion": "good", "label": True},
        {"prompt": "a", "completion": "bad", "label": False},
    ]
    assert load_preferences(_file(tmp_path, kto)).rows == [
        {"prompt": "a", "chosen": "good", "rejected": "bad"}
    ]
    prompts = [{"prompt": "x"}, {"prompt": ""}, {"prompt": [{"role": "user", "content": "y"}]}]
    assert load_prompts(_file(tmp_path, prompts)) == ["x", [{"role": "user", "content": "y"}]]
