"""Shared steps of the plabel probe tests (no tests here): a labeler who has read the guidelines
opens the labeling page; a submit that moves on to the next task."""

from __future__ import annotations

from annotate.services.guidelines import guideline_acknowledge, guideline_publish
from tests.e2e.conftest import login, settle


def open_labeling(page, project, username: str, *, labeler_in, make_user, guidelines: str = "# Go") -> int:
    """``username`` joins ``project`` as a labeler, acknowledges its guidelines and opens the
    labeling page; returns the assignment id of the task on screen."""
    user = labeler_in(project, username)
    guideline = guideline_publish(project=project, actor=make_user(), body=guidelines)
    guideline_acknowledge(guideline=guideline, user=user)
    login(page, username)
    page.goto(f"/projects/{project.slug}/label/")
    page.wait_for_selector("#task-slot .task")
    settle(page)
    return int(page.get_attribute("#task-slot .task", "data-assignment-id"))


def submit_and_wait(page, old_id: int) -> None:
    """Ctrl+Enter, then wait until another task is on screen and the page has settled."""
    page.keyboard.press("Control+Enter")
    page.wait_for_function(
        "old => { const t = document.querySelector('#task-slot .task'); return t && t.dataset.assignmentId !== String(old); }",
        arg=old_id,
    )
    settle(page)
