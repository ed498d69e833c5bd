"""Bidirectional override, embedding and isolate characters in untrusted text are shown, never
obeyed (the "Trojan Source" trick): ``abc\\u202eevil`` displayed as "abclive", so a labeler judged
a text other than the one stored and trained on. Each is shown as its code point, e.g. ⟦U+202E⟧."""

import pytest

from annotate.rendering import render_markdown

CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


@pytest.mark.parametrize("char", list(CONTROLS))
def test_each_control_is_shown_as_its_code_point(char):
    html = str(render_markdown(f"abc{char}evil"))
    assert char not in html
    assert f"abc⟦U+{ord(char):04X}⟧evil" in html


def test_in_code_links_and_tables_too():
    text = "`a\u202eb`\n\n```\nx = 1 \u2067# y\n```\n\n[see\u202e](https://example.org/\u202epath)\n\n| a |\n|---|\n| b\u202ec |\n"
    html = str(render_markdown(text))
    assert not set(CONTROLS) & set(html)
    assert html.count("⟦U+202E⟧") == 3 and "⟦U+2067⟧" in html  # code, link text, cell; code block
    assert 'href="https://example.org/%E2%9F%A6U+202E%E2%9F%A7path"' in html  # the address, encoded


def test_right_to_left_text_and_marks_are_untouched():
    text = "שלום עולם\u200f, مرحبا\u200e!"
    assert str(render_markdown(text)) == f"<p>{text}</p>\n"
