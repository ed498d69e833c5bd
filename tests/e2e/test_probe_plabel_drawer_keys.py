"""Probe (plabel): the guidelines drawer can be read without a mouse.

G opened the drawer, but the focus stayed on the task behind it: Page Down and the arrow keys
scrolled the task, never the guidelines, so a keyboard-only labeler could read only the first screen
of a long guideline. Opening the drawer now puts the focus in it (the keys scroll it, the task
shortcuts still work) and closing it with G or Esc gives the focus back to the task."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG = "# How to judge\n\n" + "\n\n".join(
    f"## Rule {i}\n\nPrefer the response that follows rule {i}." for i in range(60)
)


def test_the_guidelines_drawer_scrolls_from_the_keyboard(page, labeling_page):
    labeling_page("gus", tasks=2, guidelines=LONG, name="Long rules")
    page.keyboard.press("g")
    assert page.is_visible("#guidelines-drawer")
    for _ in range(3):
        page.keyboard.press("PageDown")
    page.wait_for_timeout(300)
    assert page.evaluate("document.getElementById('drawer-guideline').scrollTop") > 0
    # The task's keys still work with the drawer open, and G closes it, focus back on the task.
    page.keyboard.press("1")
    assert page.is_checked("#task-slot input[name=choice][value=left]")
    page.keyboard.press("g")
    assert not page.is_visible("#guidelines-drawer")
    assert page.evaluate("!!document.activeElement.closest('#task-slot')")
    page.keyboard.press("g")
    page.keyboard.press("Escape")
    assert not page.is_visible("#guidelines-drawer")
    assert page.evaluate("!!document.activeElement.closest('#task-slot')")
