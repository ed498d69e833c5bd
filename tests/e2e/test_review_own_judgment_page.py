"""The review queue in Chromium, for a manager who also labels: their own judgment's row offers no
review buttons and says why; A, X and U on it change nothing and raise no script error (X used to
look for the reject box unconditionally); J moves on to the next row, which they can review."""

from __future__ import annotations

import pytest

from annotate.models import Annotation, AnnotationReview, Task
from annotate.services.projects import membership_add
from tests.conftest import add_tasks
from tests.e2e.conftest import login, settle

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_own_row_has_no_review_keys_and_the_next_row_does(page, make_project, labeler_in, screenshot):
    project = make_project(name="Review own")
    add_tasks(project, prompts=2)
    boss = labeler_in(project, "boss", role="manager")
    membership_add(project=project, user=boss, role="labeler")
    alice = labeler_in(project, "alice")
    first, second = Task.objects.filter(project=project).order_by("pk")[:2]
    own = Annotation.objects.create(task=first, labeler=boss, choice="a", time_spent_ms=2000)
    theirs = Annotation.objects.create(task=second, labeler=alice, choice="b", time_spent_ms=2000)

    login(page, "boss")
    page.goto(f"/projects/{project.slug}/manage/review/")
    own_row = page.locator(f"#judgment-{own.pk}")
    own_row.wait_for()
    assert "Your judgment: another manager reviews it." in own_row.inner_text()
    assert own_row.locator("button").count() == 0
    own_row.focus()
    for key in ("a", "x", "u"):
        page.keyboard.press(key)
    settle(page)
    assert not AnnotationReview.objects.exists()

    page.locator(f"#judgment-{theirs.pk}").focus()
    page.keyboard.press("a")
    page.wait_for_selector("text=Accepted.")
    settle(page)
    assert AnnotationReview.objects.get().annotation_id == theirs.pk
    screenshot(page, "review-own-judgment")
    assert page.recorder.page_errors == []
