"""A labeler removed from a project while its labeling page is open is told so on their next
submit: the page's banner says they are no longer a member (the server's 403 message), the answer
stays on screen, and nothing is saved. Before: the submit answered 404 "No such project." and the
page said "No such project. Here is the next task." and moved on."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from annotate.models import Annotation, Role
from annotate.services.projects import membership_deactivate
from tests.e2e.conftest import settle

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REMOVED_MESSAGE = "You are no longer a member of this project; ask its manager."


def test_a_labeler_removed_while_the_page_is_open_is_told_on_the_next_submit(page, labeling_page):
    project, first = labeling_page("rory", tasks=3, name="Removal")
    page.keyboard.press("1")
    # The manager deactivates the labeler's membership while the page is open.
    membership_deactivate(
        project=project, user=get_user_model().objects.get(username="rory"), role=Role.LABELER
    )
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#notice:not([hidden])")
    settle(page)
    assert REMOVED_MESSAGE in page.inner_text("#notice")
    assert "No such project" not in page.inner_text("body")
    # The task (and the labeler's answer) stays on screen; nothing was saved.
    assert page.get_attribute("#task-slot .task", "data-assignment-id") == str(first)
    assert page.is_checked("#task-slot input[name=choice][value=left]")
    assert not Annotation.objects.exists()
    # Reloading the page answers the same, as a 403 page.
    response = page.reload()
    assert response.status == 403
    assert REMOVED_MESSAGE in page.inner_text("main")
    assert page.recorder.page_errors == []
