"""A labeler on a bad network acknowledges updated guidelines; the acknowledgement reaches the
server and is recorded, but its answer never comes back (the connection resets).

Before: the dialog said "Could not reach the server: nothing was recorded", which was false (the
acknowledgement was in the database). Now it says the acknowledgement may not have been recorded,
and pressing the button again closes the dialog without recording it twice."""

from __future__ import annotations

import pytest

from annotate.models import GuidelineAck
from tests.e2e.conftest import settle
from tests.e2e.test_probe_plabel_helpers import ack_again_once_online

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def answer_lost(route):
    route.fetch()  # recorded on the server ...
    route.abort("connectionreset")  # ... and the answer is lost on the way back


def test_an_acknowledgement_whose_answer_is_lost_is_not_called_unrecorded(page, ack_dialog):
    _, labeler, _, v2 = ack_dialog("lia", name="Lost acknowledgements")
    page.route("**/guidelines/ack/", answer_lost)
    page.click("#ack-dialog [data-action=ack]")
    page.wait_for_function(
        "() => document.querySelector('#ack-dialog .ack-note').textContent.includes('Could not reach')"
    )
    settle(page)
    assert GuidelineAck.objects.filter(user=labeler, guideline=v2).count() == 1
    note = page.inner_text("#ack-dialog .ack-note")
    assert "nothing was recorded" not in note
    assert "may not have been recorded" in note
    assert page.is_visible("#ack-dialog")
    ack_again_once_online(page, labeler, v2)
