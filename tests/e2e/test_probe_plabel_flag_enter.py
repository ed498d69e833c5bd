"""Probe (plabel): Enter in the flag's reason box does not submit the task.

F opens the flag's reason box; a labeler who typed the reason and pressed Enter (to confirm it)
submitted the whole task there and then (the browser's implicit form submission), flagged and
without the choice they were about to make. Submitting is Ctrl+Enter everywhere on the page; Enter
in the reason box now just leaves it, so the keys work on the task again."""

from __future__ import annotations

import pytest

from annotate.models import Annotation
from annotate.services.guidelines import guideline_acknowledge, guideline_publish
from tests.e2e.conftest import login, settle
from tests.e2e.labeling_data import make_tasks

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_enter_in_the_flag_reason_does_not_submit(page, make_project, labeler_in, make_user):
    project = make_project(name="Flags")
    user = labeler_in(project, "fay")
    guideline_acknowledge(
        guideline=guideline_publish(project=project, actor=make_user(), body="# Go"), user=user
    )
    make_tasks(project, count=3)
    login(page, "fay")
    page.goto(f"/projects/{project.slug}/label/")
    page.wait_for_selector("#task-slot .task")
    settle(page)
    first = page.get_attribute("#task-slot .task", "data-assignment-id")
    page.keyboard.press("f")
    page.keyboard.type("It contains a phone number")
    page.keyboard.press("Enter")
    page.wait_for_timeout(500)
    settle(page)
    assert not Annotation.objects.exists()
    assert page.get_attribute("#task-slot .task", "data-assignment-id") == first
    # The keys work on the task again: choose, then submit.
    page.keyboard.press("2")
    assert page.is_checked("#task-slot input[name=choice][value=right]")
    page.keyboard.press("Control+Enter")
    page.wait_for_function(
        "old => { const t = document.querySelector('#task-slot .task'); return t && t.dataset.assignmentId !== old; }",
        arg=first,
    )
    settle(page)
    annotation = Annotation.objects.get()
    assert annotation.flagged and annotation.flag_reason == "It contains a phone number"
    assert annotation.choice is not None
