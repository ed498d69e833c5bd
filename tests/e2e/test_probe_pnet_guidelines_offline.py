"""A labeler on a bad network when a manager has published new guidelines: the submit is refused
until they are acknowledged, and the page fetches them to show in the acknowledgement dialog; that
fetch fails (the connection drops).

Before: the failed fetch was an unhandled rejection in the page ("Failed to fetch") and nothing on
screen said why no guidelines came up. Now the page says it could not load them, and submitting
again once the connection is back shows them to acknowledge."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from annotate.models import Annotation, Role
from annotate.services.guidelines import guideline_publish
from tests.e2e.conftest import settle

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

GUIDELINES = "**/guidelines/current.json"


def test_guidelines_that_cannot_be_loaded_are_explained_and_shown_on_the_retry(
    page, labeling_page, labeler_in
):
    project, first = labeling_page("gus", tasks=3, guidelines="# V1", name="Offline guidelines")
    manager = labeler_in(project, "gma", role=Role.MANAGER)
    guideline_publish(project=project, actor=manager, body="# V2\n\nNew rules.", change_note="two")

    page.route(GUIDELINES, lambda route: route.abort("internetdisconnected"))
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#notice:not([hidden])")
    settle(page)
    assert "Could not load the updated guidelines" in page.inner_text("#notice")
    assert not page.is_visible("#ack-dialog")
    assert page.recorder.page_errors == []
    assert not Annotation.objects.filter(assignment_id=first).exists()
    page.unroute(GUIDELINES)

    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#ack-dialog[open]")
    settle(page)
    assert "version 2" in page.inner_text("#ack-title")
    page.click("#ack-dialog [data-action=ack]")
    page.wait_for_selector("#ack-dialog", state="hidden")
    page.keyboard.press("Control+Enter")
    page.wait_for_function(
        "old => document.querySelector('#task-slot .task').dataset.assignmentId !== String(old)", arg=first
    )
    settle(page)
    labeler = get_user_model().objects.get(username="gus")
    assert Annotation.objects.filter(assignment_id=first, labeler=labeler).count() == 1
    assert page.recorder.page_errors == [] and page.recorder.csp_violations == []
