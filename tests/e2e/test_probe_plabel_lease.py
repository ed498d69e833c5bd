"""Probe (plabel): a labeler who is still working on a task keeps it.

The page counted the lease down ("Time left on this task: 0:12") while the labeler typed a
rationale, then threw the answer away on submit ("Your lease on this task expired... Nothing was
saved"), although the renew endpoint exists so that a client keeps a task open while it is worked
on. Activity on the page now renews the lease once half of it is gone; an idle page still lets it run
out (the expired-lease test in test_labeling_pairwise covers that)."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from annotate.models import Annotation, Assignment, AssignmentState
from tests.e2e.conftest import settle
from tests.e2e.test_probe_plabel_helpers import submit_and_wait

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TTL = 30  # seconds: the shortest lease a project may have


def test_a_labeler_typing_a_rationale_does_not_lose_the_task_to_the_lease_clock(page, labeling_page):
    _, first = labeling_page("lena", tasks=3, name="Careful work", lease_ttl_seconds=TTL)
    started = time.monotonic()
    page.keyboard.press("1")
    page.keyboard.press("r")
    # The labeler writes a long rationale, a few words at a time, past the lease's first end.
    while time.monotonic() - started < TTL + 8:
        page.keyboard.type("because ")
        page.wait_for_timeout(1500)
    settle(page)
    assert Assignment.objects.get(pk=first).expires_at > timezone.now()
    submit_and_wait(page, first)
    assert "expired" not in page.inner_text("#notice")
    assert Assignment.objects.get(pk=first).state == AssignmentState.SUBMITTED
    assert Annotation.objects.get(assignment_id=first).rationale.startswith("because because")
    assert page.recorder.page_errors == [] and page.recorder.csp_violations == []


def test_a_labeler_reading_a_long_response_keeps_the_task(page, labeling_page):
    """Reading is work too: scrolling through a long response (or the guidelines) counts."""
    _, first = labeling_page(
        "rhea",
        tasks=2,
        texts=["A long answer.\n\n" + "More detail here. " * 3000, "Short."],
        name="Long reads",
        lease_ttl_seconds=TTL,
    )
    page.mouse.move(300, 400)
    started = time.monotonic()
    while time.monotonic() - started < TTL + 8:
        page.mouse.wheel(0, 120)
        page.wait_for_timeout(1500)
    settle(page)
    page.keyboard.press("2")
    submit_and_wait(page, first)
    assert "expired" not in page.inner_text("#notice")
    assert Assignment.objects.get(pk=first).state == AssignmentState.SUBMITTED
