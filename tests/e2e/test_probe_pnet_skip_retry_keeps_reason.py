"""A labeler on a bad network skips a task with a reason of their own; the skip never reaches the
server (the connection drops). The page says so and the task stays on screen to try again.

Before: opening the skip dialog again emptied it (the reason the labeler wrote was gone and the
first ready-made reason was chosen again), so a retry had to be typed anew, or went out with a
reason the labeler never picked. Now the dialog opens again as it was left for that task, and
the retry records the labeler's own reason."""

from __future__ import annotations

import pytest

from annotate.models import Assignment, AssignmentState
from tests.e2e.conftest import settle
from tests.e2e.test_labeling_pairwise import current_id, wait_for_new_task

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REASON = "The second response quotes a paywalled article I cannot check"


def open_skip(page) -> None:
    page.keyboard.press("s")
    page.wait_for_selector("#skip-dialog[open]")


def test_a_failed_skip_keeps_the_reason_for_the_retry(page, labeling_page):
    _, first = labeling_page("sol", tasks=4, name="Flaky skips")

    page.route("**/skip/", lambda route: route.abort("internetdisconnected"))
    open_skip(page)
    page.fill("#skip-dialog input[name=skip_other]", REASON)
    page.keyboard.press("Enter")
    page.wait_for_selector(".task .form-error:not([hidden])")
    settle(page)
    assert "Could not reach the server" in page.inner_text(".task .form-error")
    assert Assignment.objects.get(pk=first).state == AssignmentState.LIVE
    page.unroute("**/skip/")

    open_skip(page)
    assert page.input_value("#skip-dialog input[name=skip_other]") == REASON
    assert page.is_checked("#skip-dialog input[name=skip_reason][value=other]")
    page.keyboard.press("Enter")
    second = wait_for_new_task(page, first)
    skipped = Assignment.objects.get(pk=first)
    assert skipped.state == AssignmentState.SKIPPED and skipped.skip_reason == REASON

    # The next task's skip dialog starts afresh.
    open_skip(page)
    assert page.input_value("#skip-dialog input[name=skip_other]") == ""
    assert page.is_checked("#skip-dialog input[name=skip_reason] >> nth=0")
    page.keyboard.press("Escape")
    assert current_id(page) == second
    assert page.recorder.page_errors == [] and page.recorder.csp_violations == []
