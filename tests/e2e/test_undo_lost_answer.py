"""The labeling page when the answer to an undo is lost on the way (the server did the undo).

Before: the page said "Could not reach the server to undo."; pressing Backspace again answered 409
"Only a submitted task can be undone.", so the page gave up while the server had reopened the task
for this labeler (shown nowhere until its lease ran out). Now the second undo answers as the first
would have: the task comes back on screen, and the lease the first undo gave back (the prefetched
task) is dropped by the page instead of shown and refused later."""

from __future__ import annotations

import pytest

from annotate.models import Annotation, Assignment, AssignmentState
from tests.e2e.conftest import settle
from tests.e2e.labeling_data import make_tasks
from tests.e2e.test_labeling_pairwise import wait_for_new_task
from tests.e2e.test_undo_lease_cap import first_submitted, live_ids

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_undo_whose_answer_was_lost_works_when_pressed_again(page, make_project, labeler_in):
    project = make_project(name="Undo answer lost")
    make_tasks(project, count=6)
    labeler = labeler_in(project, "ulla")
    t1, t2 = first_submitted(page, project, "ulla")  # t2 on screen, a third task prefetched behind it
    (t3,) = live_ids(labeler) - {t2}

    lost = []

    def lose_the_answer(route):  # the request reaches the server; its answer never comes back
        route.fetch()
        lost.append(route.request.url)
        route.abort("connectionreset")

    page.route("**/undo/", lose_the_answer)
    page.keyboard.press("Backspace")
    # The undo waits for any prefetch still in flight, then goes through route.fetch (one more hop):
    # on a loaded CI machine that has taken over the default 10 s, so this wait allows 30 s.
    page.wait_for_function(
        "() => document.querySelector('#notice').textContent.includes('Could not reach')", timeout=30_000
    )
    page.unroute("**/undo/")
    assert len(lost) == 1
    assert Assignment.objects.get(pk=t1).state == AssignmentState.LIVE  # the server did undo it
    assert not Annotation.objects.filter(assignment_id=t1).exists()

    page.keyboard.press("Backspace")  # again
    page.wait_for_function(
        "id => document.querySelector('#task-slot .task').dataset.assignmentId === String(id)",
        arg=t1,
        timeout=30_000,
    )
    settle(page)
    assert "Undone" in page.inner_text("#notice")
    assert Assignment.objects.get(pk=t3).state == AssignmentState.RELEASED

    page.keyboard.press("2")
    page.keyboard.press("Control+Enter")
    assert wait_for_new_task(page, t1) == t2
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    t4 = wait_for_new_task(page, t2)
    assert t4 != t3  # the page dropped the lease the first undo gave back
    assert Annotation.objects.filter(assignment_id=t1).count() == 1
    assert page.recorder.page_errors == []
