"""A newer guideline version published while the labeler reads the acknowledgement dialog: the
click acknowledges the version the dialog showed, which the server refuses (409) without recording
it, and the dialog then shows the current version, saying why, to read and acknowledge. Before: the
older version was recorded as acknowledged."""

from __future__ import annotations

import pytest

from annotate.models import GuidelineAck
from annotate.services.guidelines import guideline_publish
from tests.e2e.conftest import settle

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_acknowledging_a_version_replaced_while_the_dialog_was_open_shows_the_current_one(page, ack_dialog):
    project, labeler, manager, v2 = ack_dialog("nia", name="Moving rules")
    # While the dialog is open, version 3 comes out; the labeler acknowledges what they read (v2).
    v3 = guideline_publish(project=project, actor=manager, body="# V3\n\nThird rules.", change_note="three")
    page.click("#ack-dialog [data-action=ack]")
    page.wait_for_function("() => document.querySelector('#ack-title').textContent.includes('version 3')")
    settle(page)
    assert page.is_visible("#ack-dialog")
    assert "Third rules." in page.inner_text("#ack-dialog .ack-body")
    assert "version 3 is the current one" in page.inner_text("#ack-dialog .ack-note")
    assert not GuidelineAck.objects.filter(user=labeler, guideline__in=[v2, v3]).exists()
    # Acknowledging the version now on screen records it and lets the labeler go on.
    page.click("#ack-dialog [data-action=ack]")
    page.wait_for_selector("#ack-dialog", state="hidden")
    settle(page)
    assert list(
        GuidelineAck.objects.filter(user=labeler, guideline__in=[v2, v3]).values_list(
            "guideline_id", flat=True
        )
    ) == [v3.pk]
    assert page.recorder.page_errors == [] and page.recorder.csp_violations == []
