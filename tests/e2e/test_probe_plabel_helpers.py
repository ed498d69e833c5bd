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


def ack_again_once_online(page, labeler, guideline) -> None:
    """With the connection back (the ack route no longer intercepted), the labeler presses the
    acknowledgement button again: the dialog closes, ``guideline`` is acknowledged exactly once, and
    the page had no error."""
    from annotate.models import GuidelineAck

    page.unroute("**/guidelines/ack/")
    page.click("#ack-dialog [data-action=ack]")
    page.wait_for_selector("#ack-dialog", state="hidden")
    settle(page)
    assert GuidelineAck.objects.filter(user=labeler, guideline=guideline).count() == 1
    assert page.recorder.page_errors == [] and page.recorder.csp_violations == []


def submit_held(page) -> list:
    """Press 1 and Ctrl+Enter with the submit's request held (a slow network): returns the list
    the held request lands in (pass it to ``release_held``) once the page shows it is saving."""
    held: list = []
    page.route("**/submit/", lambda route: held.append(route))
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("() => document.querySelector('.task').classList.contains('is-submitting')")
    return held


def release_held(page, held: list) -> None:
    """Let the submit ``submit_held`` holds go on to the server, and stop holding submits."""
    while not held:
        page.wait_for_timeout(50)
    held[0].continue_()
    page.unroute("**/submit/")
