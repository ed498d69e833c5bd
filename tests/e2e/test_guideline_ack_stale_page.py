"""A newer guideline version published while the labeler reads the acknowledgement dialog: the
click acknowledges the version the dialog showed, which the server refuses (409) without recording
it, and the dialog then shows the current version, saying why, to read and acknowledge. Before: the
older version was recorded as acknowledged."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from annotate.models import GuidelineAck, Role
from annotate.services.guidelines import guideline_publish
from tests.e2e.conftest import settle
from tests.e2e.labeling_data import make_tasks
from tests.e2e.test_probe_plabel_helpers import open_labeling

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_acknowledging_a_version_replaced_while_the_dialog_was_open_shows_the_current_one(
    page, make_project, labeler_in, make_user
):
    project = make_project(name="Moving rules")
    make_tasks(project, count=3)
    open_labeling(page, project, "nia", labeler_in=labeler_in, make_user=make_user, guidelines="# V1")
    labeler = get_user_model().objects.get(username="nia")
    manager = labeler_in(project, "mo", role=Role.MANAGER)
    v2 = guideline_publish(project=project, actor=manager, body="# V2\n\nSecond rules.", change_note="two")
    # The next submit asks the labeler to read version 2.
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#ack-dialog[open]")
    settle(page)
    assert "version 2" in page.inner_text("#ack-title")
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
