"""A labeler in a real browser: guidelines, A/B by keyboard and by mouse, skip, flag, undo."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from annotate.models import Annotation, Assignment, AssignmentState, Choice, TaskCandidate
from annotate.services.guidelines import guideline_acknowledge, guideline_publish
from tests.e2e.conftest import login, settle
from tests.e2e.labeling_data import make_tasks

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

GUIDELINES = """# How to judge

Prefer the response that **actually solves** the user's problem.

- Correct beats confident.
- Shorter is better when both are correct.
- Flag anything containing personal data.
"""


class AlternatingShuffle:
    """Deterministic display order: the 1st, 3rd, 5th... lease shows B on the left."""

    def __init__(self) -> None:
        self.calls = itertools.count()

    def shuffle(self, items: list) -> None:
        if next(self.calls) % 2 == 0:
            items.reverse()


@pytest.fixture
def b_on_left_first(monkeypatch):
    monkeypatch.setattr("annotate.services.leasing._rng", AlternatingShuffle())


def current_id(page) -> int:
    return int(page.get_attribute("#task-slot .task", "data-assignment-id"))


def wait_for_new_task(page, old_id: int) -> int:
    page.wait_for_function(
        "old => { const t = document.querySelector('#task-slot .task'); return t && t.dataset.assignmentId !== String(old); }",
        arg=old_id,
    )
    settle(page)  # the next prefetch has landed: the database is quiet for the test's reads
    return current_id(page)


def canonical_for(assignment: Assignment, side: str) -> str:
    slots = list(
        TaskCandidate.objects.filter(task=assignment.task)
        .order_by("slot")
        .values_list("candidate_id", flat=True)
    )
    shown = assignment.shown_order[0 if side == "left" else 1]
    return Choice.A if slots.index(shown) == 0 else Choice.B


def test_pairwise_labeling_end_to_end(page, make_project, labeler_in, make_user, screenshot, b_on_left_first):
    project = make_project(
        name="Coding help: A/B",
        description="Which answer helps the user more?",
        dimensions=[{"label": "Correctness", "required": True}, {"label": "Clarity"}],
        rating_scale_max=5,
    )
    make_tasks(project, count=5)
    labeler = labeler_in(project, "alice")
    guideline_publish(project=project, actor=make_user("manager"), body=GUIDELINES)

    page.goto("/accounts/login/")
    screenshot(page, "login", full_page=False)
    login(page, "alice")
    screenshot(page, "home", full_page=False)
    page.click("text=Start labeling")
    # The guidelines come first, and must be acknowledged.
    assert page.is_visible("text=Before you start")
    assert not Assignment.objects.exists()
    screenshot(page, "guidelines-ack", full_page=False)
    page.click("#ack-button")
    page.wait_for_selector("#task-slot .task")

    # Task 1, by keyboard: B is on the left (AlternatingShuffle), "1" means left, so B is recorded.
    t1 = current_id(page)
    a1 = Assignment.objects.get(pk=t1)
    slots = list(
        TaskCandidate.objects.filter(task=a1.task).order_by("slot").values_list("candidate_id", flat=True)
    )
    assert a1.shown_order == [slots[1], slots[0]]
    # The page prefetches the next task: two live leases.
    settle(page)
    assert Assignment.objects.filter(labeler=labeler, state=AssignmentState.LIVE).count() == 2
    page.keyboard.press("1")
    page.keyboard.press("w")
    # Rate both responses on the required dimension (mouse).
    for pos, score in ((0, 4), (1, 2)):
        page.click(
            f"#task-slot .response[data-position='{pos}'] fieldset[data-dimension=correctness] .scale-option:nth-child({score})"
        )
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "labeling-ab", full_page=False)
    page.set_viewport_size({"width": 420, "height": 900})
    screenshot(page, "labeling-ab-narrow", full_page=False)
    page.set_viewport_size({"width": 1360, "height": 900})
    page.keyboard.press("Control+Enter")
    t2 = wait_for_new_task(page, t1)

    ann1 = Annotation.objects.get(assignment_id=t1)
    assert ann1.choice == Choice.B  # picked "left" while B was shown on the left
    assert ann1.strength == 2
    assert ann1.ratings == {"correctness": {str(a1.shown_order[0]): 4, str(a1.shown_order[1]): 2}}
    assert ann1.time_spent_ms and ann1.time_spent_ms > 0
    assert page.inner_text("#progress-text").startswith("1 done")

    # Task 2, by mouse: "Response 2" (right), a rationale, required ratings, Submit button.
    page.click("#task-slot .choice:has(input[value=right])")
    for pos in (0, 1):
        page.click(
            f"#task-slot .response[data-position='{pos}'] fieldset[data-dimension=correctness] .scale-option:nth-child(3)"
        )
    page.fill("#task-slot textarea[name=rationale]", "Response 2 uses chunksize, which is what matters here.")
    page.click("#task-slot .btn-submit")
    t3 = wait_for_new_task(page, t2)
    ann2 = Annotation.objects.get(assignment_id=t2)
    assert ann2.choice == canonical_for(Assignment.objects.get(pk=t2), "right")
    assert ann2.rationale.startswith("Response 2 uses chunksize")
    assert ann2.strength is None

    # Shortcuts are inert while typing: "1" in the rationale box is text, not a choice.
    page.click("#task-slot textarea[name=rationale]")
    page.keyboard.type("1 2 s f")
    assert page.input_value("#task-slot textarea[name=rationale]") == "1 2 s f"
    assert not page.is_checked("#task-slot input[name=choice][value=left]")
    assert not page.is_visible("#skip-dialog")
    page.fill("#task-slot textarea[name=rationale]", "")
    page.keyboard.press("Escape")  # leaves the text box: shortcuts work again

    # Submitting without a choice says what is missing, and saves nothing.
    page.keyboard.press("Control+Enter")
    assert "Choose which response is better" in page.inner_text("#task-slot .form-error")
    assert not Annotation.objects.filter(assignment_id=t3).exists()

    # Task 3: skip it with S and a reason.
    page.keyboard.press("s")
    page.wait_for_selector("#skip-dialog[open]")
    page.check("#skip-dialog input[value=other]")
    page.fill("#skip-dialog input[name=skip_other]", "Needs a pandas expert")
    page.keyboard.press("Enter")
    t4 = wait_for_new_task(page, t3)
    skipped = Assignment.objects.get(pk=t3)
    assert skipped.state == AssignmentState.SKIPPED and skipped.skip_reason == "Needs a pandas expert"
    assert not Annotation.objects.filter(assignment_id=t3).exists()

    # Task 4: flag it with F (no choice needed, a reason is).
    page.keyboard.press("f")
    assert page.evaluate("document.activeElement.name") == "flag_reason"
    page.keyboard.type("Contains an email address")
    page.keyboard.press("Control+Enter")
    t5 = wait_for_new_task(page, t4)
    flagged = Annotation.objects.get(assignment_id=t4)
    assert flagged.flagged and flagged.choice is None and flagged.flag_reason == "Contains an email address"

    # Undo brings task 4 back (with the flag as it was), and deletes its annotation.
    page.keyboard.press("Backspace")
    page.wait_for_function(
        "id => document.querySelector('#task-slot .task').dataset.assignmentId === String(id)", arg=t4
    )
    assert not Annotation.objects.filter(assignment_id=t4).exists()
    assert Assignment.objects.get(pk=t4).state == AssignmentState.LIVE
    assert page.is_checked("#task-slot input[name=flagged]")
    # Change the answer: unflag, choose a tie by keyboard.
    page.click("#task-slot .flag-toggle")
    page.keyboard.press("3")
    for pos in (0, 1):
        page.click(
            f"#task-slot .response[data-position='{pos}'] fieldset[data-dimension=correctness] .scale-option:nth-child(5)"
        )
    page.keyboard.press("Control+Enter")
    back_to = wait_for_new_task(page, t4)
    assert back_to == t5  # the task that was on screen before the undo comes back
    redone = Annotation.objects.get(assignment_id=t4)
    assert redone.choice == Choice.TIE and not redone.flagged

    # Task 5: both bad, by keyboard; then nothing is left.
    page.keyboard.press("4")
    for pos in (0, 1):
        page.click(
            f"#task-slot .response[data-position='{pos}'] fieldset[data-dimension=correctness] .scale-option:nth-child(1)"
        )
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#task-slot .task-done")
    assert "All caught up" in page.inner_text("#task-slot")
    assert Annotation.objects.get(assignment_id=t5).choice == Choice.BOTH_BAD

    # Exactly what was chosen, and nothing else.
    assert Annotation.objects.filter(labeler=labeler).count() == 4
    assert page.recorder.page_errors == []
    assert page.recorder.csp_violations == []
    assert page.recorder.console_errors == []


def test_help_and_guidelines_are_one_key_away(page, make_project, labeler_in, make_user):
    project = make_project(name="Shortcuts")
    make_tasks(project, count=2)
    labeler_in(project, "bob")
    guideline = guideline_publish(project=project, actor=make_user("m"), body="Be **fair**.")
    guideline_acknowledge(guideline=guideline, user=get_user_model().objects.get(username="bob"))
    login(page, "bob")
    page.goto(f"/projects/{project.slug}/label/")
    page.wait_for_selector("#task-slot .task")
    page.keyboard.press("?")
    page.wait_for_selector("#help-dialog[open]")
    assert "Undo your last submission" in page.inner_text("#help-dialog")
    page.keyboard.press("Escape")
    assert not page.is_visible("#help-dialog")
    page.keyboard.press("g")
    assert page.is_visible("#guidelines-drawer")
    assert "fair" in page.inner_text("#drawer-guideline")
    page.keyboard.press("g")
    assert not page.is_visible("#guidelines-drawer")
    assert page.recorder.csp_violations == [] and page.recorder.page_errors == []


def test_an_expired_lease_is_explained_and_the_next_task_shown(page, make_project, labeler_in):
    project = make_project(name="Slow day")
    make_tasks(project, count=3)
    labeler = labeler_in(project, "eve")
    login(page, "eve")
    page.goto(f"/projects/{project.slug}/label/")
    page.wait_for_selector("#task-slot .task")
    settle(page)  # the prefetch is done: nothing in flight while the test writes
    first = current_id(page)
    # The lease runs out while the labeler is still thinking (the sweep has not run yet).
    past = timezone.now() - timedelta(seconds=5)
    Assignment.objects.filter(pk=first).update(leased_at=past - timedelta(minutes=20), expires_at=past)
    page.keyboard.press("2")
    page.keyboard.press("Control+Enter")
    second = wait_for_new_task(page, first)
    assert "expired" in page.inner_text("#notice")
    assert not Annotation.objects.filter(assignment_id=first).exists()
    # The next task works as usual.
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    wait_for_new_task(page, second)
    assert Annotation.objects.filter(labeler=labeler).count() == 1
    assert page.recorder.page_errors == [] and page.recorder.csp_violations == []


def test_undo_still_takes_back_the_last_submission_after_a_skip(page, make_project, labeler_in):
    """The help says Backspace undoes your last submission; after a skip it said "Nothing to undo"
    although the submission before the skip was still live."""
    project = make_project(name="Undo after skip")
    make_tasks(project, count=4)
    labeler_in(project, "ula")
    page.goto("/accounts/login/")
    login(page, "ula")
    page.goto(f"/projects/{project.slug}/label/")
    page.wait_for_selector("#task-slot .task")
    first = current_id(page)
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    second = wait_for_new_task(page, first)
    assert Annotation.objects.filter(assignment_id=first).exists()
    page.keyboard.press("s")
    page.wait_for_selector("#skip-dialog[open]")
    page.check("#skip-dialog input[name=skip_reason] >> nth=0")
    page.keyboard.press("Enter")
    third = wait_for_new_task(page, second)
    assert third != first
    page.keyboard.press("Backspace")
    page.wait_for_function(
        "id => document.querySelector('#task-slot .task').dataset.assignmentId === String(id)", arg=first
    )
    assert "Undone" in page.inner_text("#notice")
    settle(page)
    assert not Annotation.objects.filter(assignment_id=first).exists()
    assert Assignment.objects.get(pk=first).state == AssignmentState.LIVE


def test_the_labeling_page_fits_a_phone(page, make_project, labeler_in, screenshot):
    """At 375 px the last points of a rating scale were cut off (the scale overflowed its row), and
    the header squeezed the project's name to nothing."""
    project = make_project(
        name="Phone labeling",
        dimensions=[{"label": "Helpfulness", "required": True}, {"label": "Honesty"}],
        rating_scale_max=5,
    )
    make_tasks(project, count=2)
    labeler_in(project, "pia")
    page.set_viewport_size({"width": 375, "height": 800})
    login(page, "pia")
    page.goto(f"/projects/{project.slug}/label/")
    page.wait_for_selector("#task-slot .task")
    crumb = page.locator(".crumb-project").bounding_box()
    assert crumb and crumb["width"] >= 40, crumb
    for scale in page.locator("#task-slot .scale").all():
        box = scale.bounding_box()
        for option in scale.locator(".scale-option span").all():
            opt = option.bounding_box()
            assert opt["x"] >= box["x"] - 0.5 and opt["x"] + opt["width"] <= box["x"] + box["width"] + 0.5, (
                opt,
                box,
            )
            assert opt["x"] + opt["width"] <= 375, opt
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(page, "labeling-phone", full_page=True)
