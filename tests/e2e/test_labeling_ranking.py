"""Ranking K responses in a real browser: by drag and drop, and by keyboard (with a tie)."""

from __future__ import annotations

import pytest

from annotate.models import Annotation, Assignment, TaskKind
from tests.e2e.conftest import login, settle
from tests.e2e.labeling_data import make_tasks

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def order(page) -> list[int]:
    return [
        int(p)
        for p in page.eval_on_selector_all("#task-slot .rank-item", "els => els.map(e => e.dataset.position)")
    ]


def current_id(page) -> int:
    return int(page.get_attribute("#task-slot .task", "data-assignment-id"))


def test_ranking_by_drag_and_by_keyboard(page, make_project, labeler_in, screenshot):
    project = make_project(
        name="Coding help: ranking",
        kind=TaskKind.RANKING,
        ranking_k=4,
        allow_rank_ties=True,
        dimensions=[{"label": "Correctness"}],
    )
    make_tasks(project, count=2, per_task=4)
    labeler = labeler_in(project, "carol")
    login(page, "carol")
    page.click("text=Start labeling")
    page.wait_for_selector("#task-slot .rank-item")
    settle(page)
    assert order(page) == [0, 1, 2, 3]

    # Submitting the order as shown needs a second, deliberate Ctrl+Enter.
    t1 = current_id(page)
    page.keyboard.press("Control+Enter")
    assert "haven't changed the order" in page.inner_text("#task-slot .form-error")
    assert not Annotation.objects.exists()

    # Task 1: drag D (display position 3) to the top.
    page.drag_and_drop("#task-slot .rank-item[data-position='3']", "#task-slot .rank-item[data-position='0']")
    assert order(page) == [3, 0, 1, 2]
    assert page.inner_text("#task-slot .rank-item[data-position='3'] .rank-num") == "1"
    assert page.inner_text("#task-slot .response[data-position='3'] [data-rank-badge]") == "#1"
    page.click("#task-slot .btn-submit")
    page.wait_for_function(
        "old => document.querySelector('#task-slot .task').dataset.assignmentId !== String(old)", arg=t1
    )
    settle(page)
    a1 = Assignment.objects.get(pk=t1)
    shown = a1.shown_order
    assert Annotation.objects.get(assignment=a1).ranking == [[shown[3]], [shown[0]], [shown[1]], [shown[2]]]

    # Task 2, by keyboard only: J/K pick, Shift+↑ moves, a digit jumps, T ties with the one above.
    t2 = current_id(page)
    page.keyboard.press("j")  # B selected
    page.keyboard.press("Shift+ArrowUp")  # B to the top
    assert order(page) == [1, 0, 2, 3]
    page.keyboard.press("j")  # A selected
    page.keyboard.press("4")  # A to position 4
    assert order(page) == [1, 2, 3, 0]
    page.keyboard.press("k")  # D selected (third now)
    page.keyboard.press("t")  # D tied with C
    assert page.get_attribute("#task-slot .rank-item[data-position='3']", "data-tied") == "1"
    nums = page.eval_on_selector_all("#task-slot .rank-num", "els => els.map(e => e.textContent)")
    assert nums == ["1", "2", "2", "3"]
    page.click(
        "#task-slot .response[data-position='1'] fieldset[data-dimension=correctness] .scale-option:nth-child(5)"
    )
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "labeling-ranking", full_page=False)
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#task-slot .task-done")
    settle(page)
    a2 = Assignment.objects.get(pk=t2)
    shown = a2.shown_order
    ann = Annotation.objects.get(assignment=a2)
    assert ann.ranking == [[shown[1]], [shown[2], shown[3]], [shown[0]]]
    assert ann.ratings == {"correctness": {str(shown[1]): 5}}

    assert Annotation.objects.filter(labeler=labeler).count() == 2
    assert page.recorder.page_errors == []
    assert page.recorder.csp_violations == []
    assert page.recorder.console_errors == []
