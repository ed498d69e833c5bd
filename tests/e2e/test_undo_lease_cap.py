"""The labeling page after an undo at the live-lease cap (the task on screen plus a prefetched one).

Before: undoing the last submission made a third live lease; the page kept the prefetched task in
its queue and later showed it, although the server now gives that lease back (submitting it would
answer "already released"). Now the page drops the lease the undo released and goes on with live
leases only."""

from __future__ import annotations

import pytest

from annotate.models import Annotation, Assignment, AssignmentState
from tests.e2e.conftest import login, settle
from tests.e2e.labeling_data import make_tasks
from tests.e2e.test_labeling_pairwise import current_id, wait_for_new_task

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def live_ids(labeler) -> set[int]:
    return set(
        Assignment.objects.filter(labeler=labeler, state=AssignmentState.LIVE).values_list("pk", flat=True)
    )


def first_submitted(page, project, username: str) -> tuple[int, int]:
    """``username`` signs in, opens the labeling page and submits the first task; returns (its lease
    id, the next task's, now on screen with a third task prefetched behind it)."""
    page.goto("/accounts/login/")
    login(page, username)
    page.goto(f"/projects/{project.slug}/label/")
    page.wait_for_selector("#task-slot .task")
    settle(page)
    t1 = current_id(page)
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    return t1, wait_for_new_task(page, t1)


def test_undo_with_a_prefetched_task_keeps_two_leases_and_the_page_follows(page, make_project, labeler_in):
    project = make_project(name="Undo at the cap")
    make_tasks(project, count=6)
    labeler = labeler_in(project, "uma")
    t1, t2 = first_submitted(page, project, "uma")
    held = live_ids(labeler)
    assert len(held) == 2 and t2 in held
    (t3,) = held - {t2}

    page.keyboard.press("Backspace")
    page.wait_for_function(
        "id => document.querySelector('#task-slot .task').dataset.assignmentId === String(id)", arg=t1
    )
    settle(page)
    assert live_ids(labeler) == {t1, t2}  # never three
    assert Assignment.objects.get(pk=t3).state == AssignmentState.RELEASED

    page.keyboard.press("2")
    page.keyboard.press("Control+Enter")
    assert wait_for_new_task(page, t1) == t2  # the task that was on screen comes back
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    t4 = wait_for_new_task(page, t2)
    assert t4 != t3  # not the lease the undo gave back
    assert Assignment.objects.get(pk=t4).state == AssignmentState.LIVE
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    wait_for_new_task(page, t4)
    assert Annotation.objects.filter(assignment_id=t4).exists()
    assert page.is_hidden("#notice") or "released" not in page.inner_text("#notice")
    assert page.recorder.page_errors == [] and page.recorder.console_errors == []
