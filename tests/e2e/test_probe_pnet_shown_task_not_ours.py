"""A labeler on a bad network: the answer to their submit of task B is lost (the server saved it),
and the page, not knowing, still holds B. The labeler then undoes their previous submission A
(Backspace), fixes it and submits it again; the page goes back to B.

Before: B came back on screen as if it were still to do (its lease had ended with the lost
submit; the renewal the page sends was refused without a word), and the labeler judged it a
second time for nothing ("already submitted" only on that submit). Now the refused renewal is
said at once and the page moves on to a task that is theirs, with the counter right."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from annotate import selectors
from annotate.models import Annotation
from tests.e2e.conftest import settle
from tests.e2e.test_labeling_pairwise import current_id, wait_for_new_task

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def answer_lost(route):
    route.fetch()
    route.abort("connectionreset")


def test_a_task_whose_lease_ended_behind_the_page_is_not_shown_to_do(page, labeling_page):
    project, a = labeling_page("bea", tasks=6, name="Not yours any more")
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    b = wait_for_new_task(page, a)

    page.route("**/submit/", answer_lost)
    page.keyboard.press("2")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector(".task .form-error:not([hidden])")
    settle(page)
    page.unroute("**/submit/")
    assert Annotation.objects.filter(assignment_id=b).count() == 1  # saved, the page does not know

    page.keyboard.press("Backspace")  # undo A
    page.wait_for_function(
        "id => document.querySelector('#task-slot .task').dataset.assignmentId === String(id)", arg=a
    )
    settle(page)
    page.keyboard.press("2")
    page.keyboard.press("Control+Enter")
    wait_for_new_task(page, a)
    page.wait_for_function(
        "id => document.querySelector('#task-slot .task').dataset.assignmentId !== String(id)", arg=b
    )
    settle(page)
    assert current_id(page) not in (a, b)
    assert "already submitted" in page.inner_text("#notice")
    labeler = get_user_model().objects.get(username="bea")
    truth = selectors.labeler_progress_bar(project=project, user=labeler)
    assert truth["done"] == 2
    assert " ".join(page.inner_text("#progress-text").split()) == f"2 done · {truth['left']} left"
    assert Annotation.objects.filter(assignment_id=b).count() == 1
    assert page.recorder.page_errors == [] and page.recorder.csp_violations == []
