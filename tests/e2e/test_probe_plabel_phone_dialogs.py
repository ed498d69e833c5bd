"""Probe (plabel): the labeling page's dialogs fit a phone (375 px).

When a manager published new guidelines mid-session, the acknowledgement dialog on a phone
squeezed its note ("You can't submit until you acknowledge them. Your current answer is kept.") into
a sliver beside the button: the words were cut off at the dialog's left edge and could not be read.
The dialog's footer now wraps, so the note and the button each get the dialog's width."""

from __future__ import annotations

import pytest

from annotate.services.guidelines import guideline_acknowledge, guideline_publish
from tests.e2e.conftest import login, settle
from tests.e2e.labeling_data import make_tasks

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Every text and button of a dialog's footer lies inside the dialog, unclipped.
FOOTER_FITS = """id => {
    const dialog = document.getElementById(id);
    const box = dialog.getBoundingClientRect();
    return [...dialog.querySelectorAll('.dialog-actions > *')].filter(el => !el.hidden).map(el => {
        const r = el.getBoundingClientRect();
        const inside = r.left >= box.left - 0.5 && r.right <= box.right + 0.5;
        const unclipped = el.scrollWidth <= el.clientWidth + 1;
        return inside && unclipped && r.width > 120 ? '' : (el.textContent.trim().slice(0, 30) || el.tagName);
    }).filter(Boolean);
}"""


def test_the_guideline_and_skip_dialogs_fit_a_phone(
    new_page, make_project, labeler_in, make_user, screenshot
):
    page = new_page(width=375, height=700)
    project = make_project(name="On the bus")
    user = labeler_in(project, "pat")
    manager = make_user()
    guideline_acknowledge(guideline=guideline_publish(project=project, actor=manager, body="# V1"), user=user)
    make_tasks(project, count=3)
    login(page, "pat")
    page.goto(f"/projects/{project.slug}/label/")
    page.wait_for_selector("#task-slot .task")
    settle(page)

    page.locator("body").press("s")
    page.wait_for_selector("#skip-dialog[open]")
    assert page.evaluate(FOOTER_FITS, "skip-dialog") == []
    page.keyboard.press("Escape")

    guideline_publish(
        project=project, actor=manager, body="# V2\n\n" + "Read carefully. " * 200, change_note="More"
    )
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#ack-dialog[open]")
    settle(page)
    screenshot(page, "probe-plabel-phone-ack", full_page=False)
    assert page.evaluate(FOOTER_FITS, "ack-dialog") == []
    page.keyboard.press("Enter")
    page.wait_for_selector("#notice:has-text('Thanks')")
