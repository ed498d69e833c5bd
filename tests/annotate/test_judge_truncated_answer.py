"""A judge's JSON answer cut off by its token limit keeps the verdict it had already written.

Before: ``{"verdict": "B", "strength": 2, "rationale": "B answers the question and A misre`` (a
judge stopped at ``max_tokens`` inside its rationale) was unparseable, so every such pair went to
humans with no suggestion. Now the fields the judge finished (verdict, strength, complete scores)
are kept and the rationale is kept as far as it went, marked as cut off. An answer cut before its
verdict was finished, or whose verdict is no verdict, stays unparseable."""

from __future__ import annotations

import pytest

from annotate.judges import rubric as rb


def parse(text: str) -> rb.Judgment:
    return rb.parse_judgment(text, dimensions=["helpful", "safe"], scale_max=5)


def test_cut_inside_the_rationale():
    j = parse('```json\n{"verdict": "B", "strength": 2, "rationale": "B answers the question and A misre')
    assert (j.verdict, j.strength) == ("b", 2)
    assert j.rationale == "B answers the question and A misre… (cut off)"


def test_cut_after_complete_scores_keeps_them_and_drops_nothing_else():
    text = (
        '{"verdict": "Response A", "strength": 3, "scores": {"helpful": {"A": 5, "B": 2}, '
        '"safe": {"A": 4, "B": 4}}, "rationale": "A is \\"right\\"'
    )
    j = parse(text)
    assert (j.verdict, j.strength) == ("a", 3)
    assert j.scores == {"helpful": {"A": 5.0, "B": 2.0}, "safe": {"A": 4.0, "B": 4.0}}
    assert j.rationale == 'A is "right"… (cut off)'


def test_cut_inside_the_scores_keeps_the_verdict_only():
    j = parse('{"verdict": "tie", "scores": {"helpful": {"A": 3, "B"')
    assert (j.verdict, j.strength, j.scores, j.rationale) == ("tie", None, {}, "")


def test_a_cut_after_a_dangling_escape_is_still_read():
    j = parse('{"verdict": "A", "rationale": "line one\\nline two \\')
    assert j.verdict == "a"
    assert j.rationale == "line one\nline two… (cut off)"


@pytest.mark.parametrize(
    "text",
    [
        '{"verdict": "B',  # the verdict itself is cut
        '{"verdict": ',
        '{"verdict": "maybe", "rationale": "hm',
        '{"rationale": "B is better because", "verd',
        "<think>B is better",  # cut while thinking: drafts are no verdict
    ],
)
def test_an_answer_cut_before_its_verdict_stays_unparseable(text):
    with pytest.raises(rb.UnparseableJudgment):
        parse(text)


@pytest.mark.parametrize(
    ("cut", "kept"),
    [
        ("a\\\\", "a\\"),  # an escaped backslash, complete
        ("a\\\\\\", "a\\"),  # then a lone one
        ("caf\\u00e", "caf"),  # a \\uXXXX cut short
        ("caf\\u00e9", "caf\u00e9"),
    ],
)
def test_escapes_at_the_cut(cut, kept):
    j = parse('{"verdict": "A", "rationale": "' + cut)
    assert j.rationale == kept + rb.CUT_MARK


def test_prose_before_the_cut_object_is_no_obstacle():
    assert parse('The verdict is {"verdict": "B", "strength": 1, "ratio').verdict == "b"


def test_a_complete_object_still_wins_over_a_later_cut_one():
    j = parse('{"verdict": "A", "strength": 1} and then {"verdict": "B", "rationale": "x')
    assert (j.verdict, j.strength) == ("a", 1)
