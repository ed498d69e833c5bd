"""A labeler on a bad network: the answer to a submit is lost (the server saved the label, the page
never heard). The page says it could not reach the server; the labeler skips the task instead of
sending it again, and the server answers that the task was already submitted, and the page moves on.

Before: the progress counter stayed where it was before the submit ("0 done"), although the label
was counted; only a reload put it right. Now the refusal carries the labeler's progress and the
counter shows what the server counted."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from annotate import selectors
from annotate.models import Annotation
from tests.e2e.conftest import settle
from tests.e2e.test_labeling_pairwise import wait_for_new_task

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def answer_lost(route):
    route.fetch()  # the request reaches the server and is done there ...
    route.abort("connectionreset")  # ... and its answer never comes back


def progress_text(page) -> str:
    return " ".join(page.inner_text("#progress-text").split())


def test_a_lost_submit_then_a_skip_leaves_the_counter_right(page, labeling_page):
    project, first = labeling_page("nia", tasks=5, name="Lost answers")
    assert progress_text(page) == "0 done · 5 left"

    page.route("**/submit/", answer_lost)
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector(".task .form-error:not([hidden])")
    settle(page)
    assert "Could not reach the server" in page.inner_text(".task .form-error")
    page.unroute("**/submit/")
    assert Annotation.objects.filter(assignment_id=first).count() == 1  # saved, unbeknown to the page

    page.keyboard.press("s")
    page.wait_for_selector("#skip-dialog[open]")
    page.check("#skip-dialog input[name=skip_reason] >> nth=0")
    page.keyboard.press("Enter")
    wait_for_new_task(page, first)
    assert "already submitted" in page.inner_text("#notice")

    labeler = get_user_model().objects.get(username="nia")
    truth = selectors.labeler_progress_bar(project=project, user=labeler)
    assert truth["done"] == 1
    assert progress_text(page) == f"1 done · {truth['left']} left"
    page.reload()
    page.wait_for_selector("#task-slot .task")
    settle(page)
    assert progress_text(page) == f"1 done · {truth['left']} left"  # what a reload shows
    assert Annotation.objects.filter(assignment_id=first).count() == 1
    assert page.recorder.page_errors == [] and page.recorder.csp_violations == []
