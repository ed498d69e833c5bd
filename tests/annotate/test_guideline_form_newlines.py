"""The guidelines form counts the text as it is stored: a line break is one character.

Before: the form checked its 200,000-character limit on the text as the browser sends it (CRLF: two
characters a line break), before turning CRLF into newlines, so guidelines of many lines just under
the limit (as the editor's counter and the textarea's maxlength count them) were refused. Now the
limit applies to the stored text; over it is still refused."""

from __future__ import annotations

import pytest

from annotate.forms import GuidelineForm
from annotate.services.guidelines import MAX_GUIDELINE_CHARS


def test_a_text_under_the_limit_in_newlines_is_taken_whatever_its_line_ends():
    lines = MAX_GUIDELINE_CHARS // 3  # "ab\n": 3 characters stored, 4 as a browser sends it
    form = GuidelineForm(data={"body": "ab\r\n" * lines})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["body"] == ("ab\n" * lines).strip()
    assert len(form.cleaned_data["body"]) <= MAX_GUIDELINE_CHARS


@pytest.mark.parametrize("end", ["\r\n", "\n"])
def test_a_text_over_the_limit_is_still_refused(end):
    form = GuidelineForm(data={"body": ("ab" + end) * (MAX_GUIDELINE_CHARS // 3 + 10)})
    assert not form.is_valid() and "body" in form.errors
