"""Probe (plabel): the ranking's move buttons work from the keyboard, press after press.

Tabbing to a response's "Move down" button and pressing Enter moved it once, but the move took the
list item (and the focused button with it) out of the page and back, so focus fell to the page's
<body>: the next Enter did nothing and Tab started again from the top of the page. Focus now stays
on the button that was pressed, in its new place."""

from __future__ import annotations

import pytest

from annotate.models import TaskKind
from tests.e2e.conftest import login, settle
from tests.e2e.labeling_data import make_tasks

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def order(page) -> list[int]:
    return [
        int(p)
        for p in page.eval_on_selector_all("#task-slot .rank-item", "els => els.map(e => e.dataset.position)")
    ]


FOCUSED = (
    "(() => { const e = document.activeElement; const li = e.closest('.rank-item');"
    " return li ? li.dataset.position + ':' + (e.dataset.move || (e.hasAttribute('data-tie') ? 'tie' : e.tagName)) : e.tagName; })()"
)


def test_move_buttons_keep_the_focus(page, make_project, labeler_in):
    project = make_project(name="Rank by keys", kind=TaskKind.RANKING, ranking_k=4, allow_rank_ties=True)
    make_tasks(project, count=1, per_task=4)
    labeler_in(project, "kim")
    login(page, "kim")
    page.goto(f"/projects/{project.slug}/label/")
    page.wait_for_selector("#task-slot .rank-item")
    settle(page)
    assert order(page) == [0, 1, 2, 3]
    # Tab to A's "Move down" (a keyboard user's way in), then Enter, Enter.
    page.focus("#task-slot .rank-item[data-position='0'] [data-move=up]")
    page.keyboard.press("Tab")
    assert page.evaluate(FOCUSED) == "0:down"
    page.keyboard.press("Enter")
    assert order(page) == [1, 0, 2, 3]
    assert page.evaluate(FOCUSED) == "0:down"
    page.keyboard.press("Enter")
    assert order(page) == [1, 2, 0, 3]
    # And back up with Shift+Tab to "Move up".
    page.keyboard.press("Shift+Tab")
    assert page.evaluate(FOCUSED) == "0:up"
    page.keyboard.press("Enter")
    assert order(page) == [1, 0, 2, 3]
    assert page.evaluate(FOCUSED) == "0:up"
    assert page.recorder.page_errors == []
