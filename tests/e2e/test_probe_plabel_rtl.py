"""Probe (plabel): right-to-left responses read right to left.

A Hebrew or Arabic response (or prompt) was laid out as left-to-right text: left-aligned, with its
closing punctuation on the wrong side ("!שלום עולם" instead of "שלום עולם!") and mixed runs of
numbers and Latin words out of order. Each paragraph of rendered Markdown now takes its direction
from its own text (English paragraphs, and code blocks, stay left to right)."""

from __future__ import annotations

import pytest

from annotate.services.guidelines import guideline_acknowledge, guideline_publish
from tests.e2e.conftest import login, settle
from tests.e2e.labeling_data import make_task_with

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HEBREW = "שלום עולם, זו תשובה בעברית!"
ARABIC = "مرحبا بالعالم، هذه إجابة!"
MIXED = f"First an English paragraph.\n\n{HEBREW}\n\n```\nprint('code stays left to right')\n```"

# For a paragraph: is its text flush right, and is its last character ("!") left of its first one?
LAYOUT = """sel => {
    const p = document.querySelector(sel);
    const text = p.firstChild;
    const range = document.createRange();
    range.selectNodeContents(p);
    const all = range.getBoundingClientRect();
    const box = p.getBoundingClientRect();
    const first = document.createRange(); first.setStart(text, 0); first.setEnd(text, 1);
    const n = text.textContent.length;
    const last = document.createRange(); last.setStart(text, n - 1); last.setEnd(text, n);
    return {
        flushRight: Math.abs(box.right - all.right) < 2 && all.left - box.left > 20,
        lastLeftOfFirst: last.getBoundingClientRect().left < first.getBoundingClientRect().left,
    };
}"""


def test_rtl_paragraphs_are_laid_out_right_to_left(page, make_project, labeler_in, make_user, screenshot):
    project = make_project(name="Multilingual")
    user = labeler_in(project, "rana")
    guideline_acknowledge(
        guideline=guideline_publish(project=project, actor=make_user(), body="# Go"), user=user
    )
    make_task_with(project, [MIXED, ARABIC], conversation=[{"role": "user", "content": HEBREW}])
    login(page, "rana")
    page.goto(f"/projects/{project.slug}/label/")
    page.wait_for_selector("#task-slot .task")
    settle(page)
    screenshot(page, "probe-plabel-rtl", full_page=False)
    # The display order is shuffled per lease: find each response by its text.
    where = "t => [...document.querySelectorAll('#task-slot .response')].find(r => r.innerText.includes(t)).dataset.position"
    mixed = f"#task-slot .response[data-position='{page.evaluate(where, 'First an English')}'] .response-body"
    arabic = f"#task-slot .response[data-position='{page.evaluate(where, ARABIC)}'] .response-body"
    hebrew_p = f"{mixed} p:nth-of-type(2)"
    assert page.inner_text(hebrew_p) == HEBREW
    assert page.evaluate(LAYOUT, hebrew_p) == {"flushRight": True, "lastLeftOfFirst": True}
    arabic_p = f"{arabic} p"
    assert page.evaluate(LAYOUT, arabic_p) == {"flushRight": True, "lastLeftOfFirst": True}
    prompt_p = "#task-slot .turn-body p"
    assert page.evaluate(LAYOUT, prompt_p) == {"flushRight": True, "lastLeftOfFirst": True}
    # English and code keep their left-to-right layout.
    english = page.evaluate(LAYOUT, f"{mixed} p:nth-of-type(1)")
    assert english == {"flushRight": False, "lastLeftOfFirst": False}
    assert (
        page.evaluate("getComputedStyle(document.querySelector('#task-slot .response-body pre')).direction")
        == "ltr"
    )
