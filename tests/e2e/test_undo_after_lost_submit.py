"""Backspace after a submit whose answer was lost does not undo an older submission.

Before: the labeler submitted task 1, then task 2; the server recorded task 2 but its answer never
came back ("Could not reach the server"). Backspace then undid task 1, the submission before
(the page still held it as the last one), reopening a task the labeler had not asked to change and
leaving task 2's judgment in place. Now a submit whose outcome is unknown ends what Backspace can
undo: it says there is nothing to undo, and submitting task 2 again (safe to repeat) makes task 2
the one Backspace takes back."""

from __future__ import annotations

import pytest

from annotate.models import Annotation, Assignment, AssignmentState
from tests.e2e.conftest import settle
from tests.e2e.labeling_data import make_tasks
from tests.e2e.test_labeling_pairwise import wait_for_new_task
from tests.e2e.test_undo_lease_cap import first_submitted

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_backspace_after_a_lost_submit_answer_leaves_the_older_submission(page, make_project, labeler_in):
    project = make_project(name="Undo after a lost submit")
    make_tasks(project, count=6)
    labeler_in(project, "ulric")
    t1, t2 = first_submitted(page, project, "ulric")
    settle(page)

    def lose_the_answer(route):  # the request reaches the server; its answer never comes back
        route.fetch()
        route.abort("connectionreset")

    page.route("**/submit/", lose_the_answer)
    page.keyboard.press("2")
    page.keyboard.press("Control+Enter")
    page.wait_for_function(
        "() => document.querySelector('#task-slot .task').textContent.includes('Could not reach')"
    )
    page.unroute("**/submit/")
    assert Annotation.objects.filter(assignment_id=t2).exists()  # the server recorded it

    page.keyboard.press("Backspace")
    page.wait_for_function("() => document.querySelector('#notice').textContent.includes('Nothing to undo')")
    settle(page)
    assert Assignment.objects.get(pk=t1).state == AssignmentState.SUBMITTED  # task 1 left alone
    assert Annotation.objects.filter(assignment_id=t1).exists()

    page.keyboard.press("Control+Enter")  # submit task 2 again: the server answers it was recorded
    t3 = wait_for_new_task(page, t2)
    assert Annotation.objects.filter(assignment_id=t2).count() == 1
    page.keyboard.press("Backspace")  # now takes back task 2, the last submission
    page.wait_for_function(
        "id => document.querySelector('#task-slot .task').dataset.assignmentId === String(id)", arg=t2
    )
    assert not Annotation.objects.filter(assignment_id=t2).exists()
    assert Annotation.objects.filter(assignment_id=t1).exists() and t3 != t2
    assert page.recorder.page_errors == []
