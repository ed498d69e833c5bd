"""Probe (plabel): the manager's pages fit a tablet or a small laptop window.

At 1024 px the review queue was 1094 px wide: the whole page scrolled sideways and each judgment's
Reject button sat past the right edge. At 768 px the progress page's labeler table, and at 375 px the
members table, pushed their cards (and the page) wider than the screen, although both tables sit in
a scrolling wrapper. Wide tables now scroll inside their card; the page never scrolls sideways, and
at 1024 px the review actions are on screen."""

from __future__ import annotations

import pytest

from annotate.models import Annotation, Task
from tests.conftest import add_tasks
from tests.e2e.conftest import login, settle

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAGES = ("manage/review/", "manage/members/", "manage/")


@pytest.mark.parametrize("width", [1024, 768, 375])
def test_manager_pages_never_scroll_sideways(new_page, make_project, labeler_in, screenshot, width):
    page = new_page(width=width, height=800)
    project = make_project(name="Tablet review", overlap=2, dimensions=[{"label": "Helpfulness"}])
    add_tasks(project, prompts=2)
    labeler_in(project, "boss", role="manager")
    labeler = labeler_in(project, "alice_with_a_rather_long_username")
    labeler.email = "alice.with.a.rather.long.address@example.org"
    labeler.save()
    Annotation.objects.bulk_create(
        [
            Annotation(
                task=t, labeler=labeler, choice="a", strength=2, rationale="because " * 30,
                time_spent_ms=5000, flagged=True, flag_reason="personal data",
            )
            for t in Task.objects.filter(project=project)
        ]
    )  # fmt: skip
    login(page, "boss")
    for path in PAGES:
        page.goto(f"/projects/{project.slug}/{path}")
        settle(page)
        wide = page.evaluate("document.scrollingElement.scrollWidth")
        assert wide <= width, f"{path} is {wide} px wide at {width} px"
    screenshot(page, f"probe-plabel-progress-{width}", full_page=False)
    if width == 1024:
        page.goto(f"/projects/{project.slug}/manage/review/")
        settle(page)
        right = page.evaluate(
            "document.querySelector('.review-row .reject-form button').getBoundingClientRect().right"
        )
        assert right <= width
        screenshot(page, "probe-plabel-review-1024", full_page=False)
