"""A labeler on a slow network presses Backspace (undo) while their submit is still on its way.

Before: nothing happened and nothing was said (the page ignored the key while busy), so the
labeler could not tell whether the undo was taken. Now the page says it is still saving and to
press Backspace again; pressed again once the submit has answered, the undo works."""

from __future__ import annotations

import pytest

from annotate.models import Annotation, Assignment, AssignmentState
from tests.e2e.conftest import settle
from tests.e2e.test_labeling_pairwise import wait_for_new_task
from tests.e2e.test_probe_plabel_helpers import release_held, submit_held

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_backspace_during_a_slow_submit_says_so_and_works_again_after(page, labeling_page):
    _, first = labeling_page("ugo", tasks=4, name="Slow undo")
    held = submit_held(page)
    page.keyboard.press("Backspace")
    assert page.is_visible("#toast")
    assert "Still saving" in page.inner_text("#toast")
    assert not page.is_visible("#notice") or "Nothing to undo" not in page.inner_text("#notice")

    release_held(page, held)
    wait_for_new_task(page, first)
    assert Annotation.objects.filter(assignment_id=first).count() == 1

    page.keyboard.press("Backspace")
    page.wait_for_function(
        "id => document.querySelector('#task-slot .task').dataset.assignmentId === String(id)", arg=first
    )
    settle(page)
    assert not Annotation.objects.filter(assignment_id=first).exists()
    assert Assignment.objects.get(pk=first).state == AssignmentState.LIVE
    assert page.recorder.page_errors == [] and page.recorder.csp_violations == []
