"""Labeler-page defects found in a campaign walk-through (issue 14), each reproduced in Chromium first."""

from __future__ import annotations

import pytest

from annotate.models import Annotation, Choice
from annotate.services.guidelines import guideline_acknowledge, guideline_publish
from tests.e2e.conftest import login, settle
from tests.e2e.labeling_data import RESPONSES, make_task_with, make_tasks

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

THREE_DIMENSIONS = [
    {"label": "Correctness", "description": "Are the facts and the code right?"},
    {"label": "Clarity", "description": "Is it easy to follow?"},
    {"label": "Safety", "description": "Does it avoid harm?"},
]


def _start(page, project, username="alice"):
    login(page, username)
    page.goto(f"/projects/{project.slug}/label/")
    page.wait_for_selector("#task-slot .task")
    settle(page)


def _ready_labeler(project, labeler_in, make_user, username="alice"):
    user = labeler_in(project, username)
    guideline = guideline_publish(project=project, actor=make_user(), body="# Judge carefully")
    guideline_acknowledge(guideline=guideline, user=user)
    return user


def test_single_newlines_inside_a_response_are_rendered(
    page, make_project, labeler_in, make_user, screenshot
):
    project = make_project()
    _ready_labeler(project, labeler_in, make_user)
    haiku = "An old silent pond\nA frog jumps into the pond\nSplash! Silence again."
    make_task_with(project, [haiku, "Not a haiku."])
    _start(page, project)
    body = page.locator("#task-slot .response-body", has_text="old silent pond")
    assert body.locator("br").count() == 2
    lines = [line.strip() for line in body.inner_text().splitlines() if line.strip()]
    assert lines == haiku.split("\n")
    screenshot(page, "labeler-haiku", full_page=False)


def test_a_digit_on_a_focused_rating_sets_that_rating_and_nothing_else(
    page, make_project, labeler_in, make_user
):
    project = make_project(dimensions=THREE_DIMENSIONS, rating_scale_max=5)
    _ready_labeler(project, labeler_in, make_user)
    make_tasks(project, count=2)
    _start(page, project)
    page.keyboard.press("1")
    page.keyboard.press("w")
    clarity = "#task-slot .response[data-position='0'] fieldset[data-dimension=clarity]"
    page.click(f"{clarity} .scale-option:nth-child(2)")
    page.keyboard.press("4")
    assert page.is_checked(f"{clarity} input[value='4']")
    assert page.is_checked("#task-slot input[name=choice][value=left]")
    assert page.is_checked("#task-slot input[name=strength][value='2']")
    assert not page.is_checked("#task-slot input[name=choice][value=both_bad]")
    # Only that rating: the same dimension of the other response is untouched.
    assert (
        page.locator(
            "#task-slot .response[data-position='1'] fieldset[data-dimension=clarity] input:checked"
        ).count()
        == 0
    )
    # A digit beyond the scale changes nothing at all (and leaves the choice alone).
    page.keyboard.press("9")
    assert page.is_checked(f"{clarity} input[value='4']")
    assert page.is_checked("#task-slot input[name=choice][value=left]")
    # The shortcut help documents the rating keys.
    page.keyboard.press("Escape")
    page.locator("body").press("?")
    assert page.is_visible("#help-dialog")
    assert "rating" in page.inner_text("#help-dialog").lower()


def test_the_sticky_footer_never_covers_a_focused_rating_at_1280x800(
    new_page, make_project, labeler_in, make_user, screenshot
):
    page = new_page(width=1280, height=800)
    project = make_project(dimensions=THREE_DIMENSIONS, rating_scale_max=5, strength_scale=True)
    _ready_labeler(project, labeler_in, make_user)
    make_task_with(project, [RESPONSES[0], RESPONSES[1]])
    _start(page, project)
    for position in (0, 1):
        for dim in ("correctness", "clarity", "safety"):
            selector = f"#task-slot .response[data-position='{position}'] fieldset[data-dimension={dim}]"
            page.evaluate("window.scrollTo(0, 0)")
            page.focus(f"{selector} input[value='3']")
            page.wait_for_timeout(50)
            covered = page.evaluate(
                """sel => {
                    const fs = document.querySelector(sel);
                    const r = fs.getBoundingClientRect();
                    const y = r.top + r.height / 2, x = r.left + r.width / 2;
                    if (y < 0 || y > window.innerHeight) return 'off-screen';
                    const hit = document.elementFromPoint(x, y);
                    return fs.contains(hit) ? '' : (hit && hit.className) || 'nothing';
                }""",
                selector,
            )
            assert covered == "", f"{selector} is hidden under {covered!r}"
    screenshot(page, "labeler-ratings-1280x800", full_page=False)


def test_ctrl_enter_while_the_next_task_is_loading_is_not_silently_dropped(
    page, make_project, labeler_in, make_user
):
    project = make_project()
    user = _ready_labeler(project, labeler_in, make_user)
    make_tasks(project, count=3)
    held = []
    login(page, "alice")
    page.goto(f"/projects/{project.slug}/label/")
    page.wait_for_selector("#task-slot .task")
    settle(page)  # the first prefetch has landed
    first = page.get_attribute("#task-slot .task", "data-assignment-id")
    page.route("**/next**", lambda route: held.append(route))
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")  # task 1 -> the prefetched task 2 appears, prefetch of 3 is held
    page.wait_for_function(
        "old => document.querySelector('#task-slot .task')?.dataset.assignmentId !== String(old)", arg=first
    )
    page.keyboard.press("2")
    page.keyboard.press("Control+Enter")  # task 2 submitted; task 3 is still on its way
    page.wait_for_timeout(1500)
    page.screenshot(path="/tmp/dbg.png")
    print(
        "DBG",
        page.evaluate("document.documentElement.dataset.pending"),
        len(held),
        page.inner_text("#task-slot")[:200],
        page.is_visible("#loading"),
    )
    page.wait_for_selector("#loading:not([hidden])")
    page.keyboard.press("Control+Enter")
    message = page.locator("#toast, #notice").filter(has_text="loading")
    message.first.wait_for(state="visible")
    assert Annotation.objects.filter(labeler=user).count() == 2
    for route in held:
        route.continue_()
    page.unroute("**/next**")
    page.wait_for_selector("#task-slot .task")
    assert Annotation.objects.filter(labeler=user).count() == 2


def test_a_long_response_keeps_the_prompt_reachable(page, make_project, labeler_in, make_user, screenshot):
    project = make_project()
    _ready_labeler(project, labeler_in, make_user)
    long_text = "\n\n".join(f"Paragraph {i}: " + "words " * 60 for i in range(40))
    make_task_with(project, [long_text, long_text + "\n\nThe end."])
    _start(page, project)
    page.evaluate("window.scrollTo(0, document.body.scrollHeight / 2)")
    bar = page.locator("#prompt-bar")
    bar.wait_for(state="visible")
    assert "40 GB" in bar.inner_text()  # the last user turn of the conversation
    screenshot(page, "labeler-prompt-bar", full_page=False)
    page.keyboard.press("p")
    page.wait_for_function(
        "() => { const r = document.querySelector('#task-slot .conversation').getBoundingClientRect();"
        " return r.bottom > 0 && r.top < window.innerHeight; }"
    )


def test_ranking_help_and_guidelines_do_not_talk_about_a_b_keys(page, make_project, labeler_in, make_user):
    from django.core.management import call_command

    call_command("seed_demo", password="pw-for-tests-123", stdout=open("/dev/null", "w"))  # noqa: SIM115
    from annotate.models import Project, TaskKind

    ranking = Project.objects.get(kind=TaskKind.RANKING)
    body = ranking.guidelines.order_by("-version").first().body
    assert "**1** (left)" not in body and "left" not in body.lower()
    ab = Project.objects.exclude(kind=TaskKind.RANKING).first()
    assert "(left)" in ab.guidelines.order_by("-version").first().body


def test_dimension_descriptions_are_visible_and_descriptions_are_markdown(
    page, make_project, labeler_in, make_user
):
    project = make_project(
        dimensions=THREE_DIMENSIONS, description="Compare answers about `pandas` and **memory**."
    )
    _ready_labeler(project, labeler_in, make_user)
    make_tasks(project, count=1)
    login(page, "alice")
    card = page.locator(".project-card-desc")
    assert card.locator("code").inner_text() == "pandas"
    assert "`" not in card.inner_text()
    page.goto(f"/projects/{project.slug}/label/")
    page.wait_for_selector("#task-slot .task")
    desc = page.locator(
        "#task-slot .response[data-position='0'] fieldset[data-dimension=clarity] .rating-desc"
    )
    assert desc.is_visible()
    assert desc.inner_text() == "Is it easy to follow?"
    assert Choice.A  # the model import is used by the other tests
