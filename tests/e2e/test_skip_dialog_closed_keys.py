"""Keys after the skip dialog was closed with Escape answer the task, never the closed dialog.

Found chasing a flaky test (test_probe_plabel_phone_dialogs, about one run in four): after Escape
closed the skip dialog, Chromium sometimes left the keyboard focus on the dialog's reason button,
hidden now. The labeler's next keys went there: "1" chose nothing, and Ctrl+Enter reached the
dialog's own Enter handler, which sent the skip form, so the task was skipped with the first
ready-made reason instead of submitted. Now the dialog's Enter works only while it is open, and
closing the dialog gives the focus back to the task."""

from __future__ import annotations

import pytest

from annotate.models import Annotation, Assignment, AssignmentState
from tests.e2e.conftest import settle

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _open_skip_then_escape(page):
    page.locator("body").press("s")
    page.wait_for_selector("#skip-dialog[open]")
    page.keyboard.press("Escape")
    page.wait_for_function("() => !document.getElementById('skip-dialog').open")


def test_escape_gives_the_focus_back_to_the_task(page, labeling_page):
    labeling_page("sam", tasks=3, name="Skip then answer")
    _open_skip_then_escape(page)
    # the task on screen has the keyboard again (not the hidden dialog's control, nor the page body)
    page.wait_for_function("() => document.activeElement.matches('#task-slot .task')", timeout=3000)


def test_enter_from_inside_the_closed_dialog_does_not_skip(page, labeling_page):
    _, first = labeling_page("sid", tasks=3, name="Skip then answer 2")
    labeler = Assignment.objects.get(pk=first).labeler
    _open_skip_then_escape(page)
    # what the labeler's Ctrl+Enter did when the focus was left on the hidden reason button
    page.evaluate(
        """() => document.querySelector('#skip-dialog input[name=skip_reason]').dispatchEvent(
            new KeyboardEvent('keydown', {key: 'Enter', ctrlKey: true, bubbles: true, cancelable: true}))"""
    )
    settle(page)
    assert Assignment.objects.get(pk=first).state != AssignmentState.SKIPPED
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    page.wait_for_function(
        "old => document.querySelector('#task-slot .task').dataset.assignmentId !== String(old)", arg=first
    )
    settle(page)
    assert Annotation.objects.filter(assignment_id=first, labeler=labeler).exists()
    assert Assignment.objects.get(pk=first).state == AssignmentState.SUBMITTED
    assert page.recorder.page_errors == []
