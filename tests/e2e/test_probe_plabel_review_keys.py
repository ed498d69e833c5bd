"""Probe (plabel): the review queue's keyboard loop keeps the manager's place.

After every action (accept, reject, restore, final label, send back) the page reloaded with the
first judgment selected and scrolled to: J then A accepted the second judgment again and again
(the walk never got past it), and saving a final label far down the page jumped back to the top.
The selection now comes back on the judgment (or task) the action was about."""

from __future__ import annotations

import pytest

from annotate.models import Annotation, AnnotationReview, Task
from tests.conftest import add_tasks
from tests.e2e.conftest import login, settle

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _review_project(make_project, labeler_in, tasks: int = 5):
    project = make_project(name="Walk the queue")
    add_tasks(project, prompts=tasks)
    labeler_in(project, "boss", role="manager")
    alice = labeler_in(project, "alice")
    Annotation.objects.bulk_create(
        [
            Annotation(task=t, labeler=alice, choice="a", time_spent_ms=3000)
            for t in Task.objects.filter(project=project)
        ]
    )
    return project


def _selected(page) -> int:
    return int(page.get_attribute(".review-row.is-selected", "data-annotation"))


def _row_ids(page) -> list[int]:
    return [
        int(x)
        for x in page.eval_on_selector_all(".review-row.is-match", "rs => rs.map(r => r.dataset.annotation)")
    ]


def test_j_then_a_walks_down_the_queue(page, make_project, labeler_in):
    project = _review_project(make_project, labeler_in)
    login(page, "boss")
    page.goto(f"/projects/{project.slug}/manage/review/")
    page.wait_for_selector(".review-row.is-selected")
    rows = _row_ids(page)
    assert _selected(page) == rows[0]
    for step in range(1, 4):
        page.locator("body").press("j")
        assert _selected(page) == rows[step]
        page.locator("body").press("a")
        page.wait_for_selector("text=Accepted.")
        settle(page)
        # The judgment just accepted is still the selected one; J goes on from there.
        assert _selected(page) == rows[step]
    accepted = set(AnnotationReview.objects.values_list("annotation_id", flat=True))
    assert accepted == set(rows[1:4])
    assert not page.recorder.csp_violations and not page.recorder.page_errors


def test_saving_a_final_label_far_down_keeps_that_task_in_view(new_page, make_project, labeler_in):
    page = new_page(width=1280, height=700)
    project = _review_project(make_project, labeler_in, tasks=6)
    login(page, "boss")
    page.goto(f"/projects/{project.slug}/manage/review/")
    page.wait_for_selector(".review-row.is-selected")
    last = page.locator(".review-task").last
    task_id = int(last.get_attribute("data-task"))
    last.locator(".adjudicate-form select[name=choice]").select_option("b")
    last.locator(".adjudicate-form button[type=submit]").click()
    page.wait_for_selector("text=Final label saved")
    settle(page)
    selected_task = page.eval_on_selector(
        ".review-row.is-selected", "r => r.closest('.review-task').dataset.task"
    )
    assert int(selected_task) == task_id
    in_view = page.evaluate(
        """id => { const r = document.getElementById('task-' + id).getBoundingClientRect();
                  return r.bottom > 0 && r.top < window.innerHeight; }""",
        task_id,
    )
    assert in_view
