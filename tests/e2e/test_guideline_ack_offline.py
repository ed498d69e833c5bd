"""The acknowledgement dialog when the acknowledgement cannot reach the server (offline, a dropped
connection): the labeler is told, the dialog stays open to try again, and a second click records
it. Before: the click's request failed silently (an unhandled rejection in the page, no word on
screen), so the labeler clicked a button that did nothing."""

from __future__ import annotations

import pytest

from annotate.models import GuidelineAck
from tests.e2e.conftest import settle
from tests.e2e.test_probe_plabel_helpers import ack_again_once_online

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_acknowledgement_that_cannot_reach_the_server_says_so_and_can_be_retried(page, ack_dialog):
    _, labeler, _, v2 = ack_dialog("ola", name="Offline rules")
    page.route("**/guidelines/ack/", lambda route: route.abort("internetdisconnected"))
    page.click("#ack-dialog [data-action=ack]")
    settle(page)
    assert page.is_visible("#ack-dialog")
    assert "Could not reach the server" in page.inner_text("#ack-dialog")
    assert not GuidelineAck.objects.filter(user=labeler, guideline=v2).exists()
    assert page.recorder.page_errors == []
    ack_again_once_online(page, labeler, v2)
