"""One HH-RLHF parser (core.hh) for the importer and the runners: TRL's rule, the prompt is the
longest shared prefix up to the last "\\n\\nAssistant:". The four shapes the importer used to refuse
(seen in real HH files) import, and the runners read them identically."""

from __future__ import annotations

import io
import json

import pytest

from annotate.models import Candidate, Prompt
from annotate.services.imports import prompts_import

P = "\n\nHuman: Is the stove hot?\n\nAssistant: It may be.\n\nHuman: How do I check?"
PROMPT_TURNS = [
    {"role": "user", "content": "Is the stove hot?"},
    {"role": "assistant", "content": "It may be."},
    {"role": "user", "content": "How do I check?"},
]

# (name, chosen reply, rejected reply): each reply is appended to P after "\n\nAssistant: "
SHAPES = [
    ("rejected_has_extra_assistant_turn", "Hold a hand above it.", "Touch it.\n\nAssistant: Carefully."),
    ("chosen_has_extra_assistant_turn", "Hold a hand above it.\n\nAssistant: Not on it.", "Touch it."),
    ("rejected_ends_with_a_human_turn", "Hold a hand above it.", "Touch it.\n\nHuman: Ouch."),
    (
        "reply_holds_a_whole_extra_exchange",
        "Hold a hand above it.",
        "Touch it.  Human: Really?\n\nAssistant: Yes.\n\nHuman: Ouch.\n\nAssistant: Sorry.",
    ),
]


def _line(chosen: str, rejected: str) -> dict:
    return {"chosen": f"{P}\n\nAssistant: {chosen}", "rejected": f"{P}\n\nAssistant: {rejected}"}


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "chosen", "rejected"), SHAPES, ids=[s[0] for s in SHAPES])
def test_formerly_refused_hh_shapes_import(make_project, name, chosen, rejected):
    project = make_project()
    stream = io.BytesIO((json.dumps(_line(chosen, rejected)) + "\n").encode())
    report = prompts_import(project=project, stream=stream, preference_source="hh-rlhf")
    assert report.committed and report.prompts == 1 and report.annotations == 1
    prompt = Prompt.objects.get(project=project)
    assert prompt.messages == PROMPT_TURNS
    texts = {c.metadata["hh_role"]: c.text for c in Candidate.objects.filter(prompt=prompt)}
    assert texts == {"chosen": chosen, "rejected": rejected}


@pytest.mark.parametrize(("name", "chosen", "rejected"), SHAPES, ids=[s[0] for s in SHAPES])
def test_runners_read_the_same_pair_as_the_importer(tmp_path, name, chosen, rejected):
    from training.runners.data import load_preferences

    path = tmp_path / "hh.jsonl"
    path.write_text(json.dumps(_line(chosen, rejected)) + "\n")
    row = load_preferences(str(path)).rows[0]
    assert row["prompt"] == PROMPT_TURNS
    assert row["chosen"] == [{"role": "assistant", "content": chosen}]
    assert row["rejected"] == [{"role": "assistant", "content": rejected}]


def test_split_pair_rules():
    from core.hh import HHFormatError, split_pair

    pair = split_pair(f"{P}\n\nAssistant: same start A", f"{P}\n\nAssistant: same start B")
    assert pair.prompt == PROMPT_TURNS and (pair.chosen, pair.rejected) == ("same start A", "same start B")
    with pytest.raises(HHFormatError) as exc:
        split_pair("\n\nHuman: Hi\n\nAssistant: Yo", "\n\nHuman: Bye\n\nAssistant: Yo")
    assert exc.value.field == "rejected"
    with pytest.raises(HHFormatError) as exc:
        split_pair("Hi", "\n\nHuman: Bye\n\nAssistant: Yo")
    assert exc.value.field == "chosen"
