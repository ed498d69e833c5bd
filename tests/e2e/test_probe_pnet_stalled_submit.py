"""A labeler on a bad network whose submit stalls: the request goes out and no answer ever comes
(a connection that went dead without closing).

Before: the page waited forever. The task stayed dimmed, and every Ctrl+Enter answered "Still
saving your last action" for as long as the page was open; nothing said the answer had not arrived
and nothing could be done but reload (losing what was typed). Now a request without an answer
after a while is given up: the page says it could not reach the server, the answer stays on
screen, and Ctrl+Enter sends it again."""

from __future__ import annotations

import pytest

from annotate.models import Annotation
from tests.e2e.conftest import settle
from tests.e2e.test_labeling_pairwise import wait_for_new_task
from tests.e2e.test_probe_plabel_helpers import submit_held

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RATIONALE = "Response 1 streams the file; response 2 would need 40 GB of memory."


def test_a_submit_that_never_answers_is_given_up_and_can_be_sent_again(page, labeling_page):
    page.clock.install()
    _, first = labeling_page("dex", tasks=4, name="Dead connections")
    page.fill(".task textarea[name=rationale]", RATIONALE)
    page.locator(".task").focus()
    held = submit_held(page)  # never let go: the answer never comes
    page.clock.run_for("02:00")
    page.wait_for_selector(".task .form-error:not([hidden])")
    assert "Could not reach the server" in page.inner_text(".task .form-error")
    assert page.input_value(".task textarea[name=rationale]") == RATIONALE
    assert len(held) == 1
    assert not Annotation.objects.filter(assignment_id=first).exists()

    page.unroute("**/submit/")
    page.keyboard.press("Control+Enter")
    wait_for_new_task(page, first)
    settle(page)
    saved = Annotation.objects.get(assignment_id=first)
    assert saved.rationale == RATIONALE
    assert page.recorder.page_errors == [] and page.recorder.csp_violations == []
