"""Verdicts as real judge models write them.

Before:

* a reasoning model's answer (``<think>`` ... ``</think>`` then the JSON, as vLLM serves such
  models without a reasoning parser) was read from its first JSON object with a verdict: a draft
  verdict inside the reasoning, which the model then changed, was taken as its answer;
* an answer truncated inside its reasoning gave the draft verdict too;
* a verdict written the way judge prompts in the literature ask for it (``[[A]]``, ``Assistant A``,
  ``Model B``), or dressed in Markdown or a full stop (``**B**``, ``A.``), was unparseable, so a
  judge answering that way sent every pair to humans.

The expected verdicts are written out by hand; answers that name no verdict stay unparseable.
"""

from __future__ import annotations

import json

import pytest

from annotate.judges import rubric as rb


def parse(text: str) -> str:
    return rb.parse_judgment(text, dimensions=["h"], scale_max=5).verdict


DRAFT_THEN_FINAL = (
    "<think>\nResponse A is longer. So the answer would be "
    '{"verdict": "A", "strength": 3}.\nWait, A misreads the question; B answers it correctly.\n'
    "</think>\n\n"
    '```json\n{"verdict": "B", "strength": 2, "rationale": "B answers the question."}\n```'
)


def test_the_verdict_after_the_reasoning_is_the_answer_not_the_draft_inside_it():
    j = rb.parse_judgment(DRAFT_THEN_FINAL, dimensions=["h"], scale_max=5)
    assert (j.verdict, j.strength, j.rationale) == ("b", 2, "B answers the question.")
    assert parse(DRAFT_THEN_FINAL.replace("think>", "THINKING>")) == "b"


def test_an_answer_cut_off_inside_its_reasoning_is_unparseable():
    truncated = DRAFT_THEN_FINAL.split("</think>")[0]
    with pytest.raises(rb.UnparseableJudgment):
        parse(truncated)


@pytest.mark.parametrize(
    ("written", "verdict"),
    [
        ("[[A]]", "a"),
        ("[[B]]", "b"),
        ("[[C]]", None),
        ("**B**", "b"),
        ("A.", "a"),
        ("`tie`", "tie"),
        ("Assistant A", "a"),
        ("Model B", "b"),
        ("Response B.", "b"),
        ("Both bad", "both_bad"),
        ("A or B", None),
        ("maybe", None),
        ("", None),
        ("Assistant", None),
    ],
)
def test_a_verdict_in_the_usual_judge_spellings_is_read(written, verdict):
    text = json.dumps({"verdict": written, "strength": 2})
    if verdict is None:
        with pytest.raises(rb.UnparseableJudgment):
            parse(text)
    else:
        assert parse(text) == verdict
