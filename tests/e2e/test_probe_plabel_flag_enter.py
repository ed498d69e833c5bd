"""Probe (plabel): Enter in the flag's reason box does not submit the task.

F opens the flag's reason box; a labeler who typed the reason and pressed Enter (to confirm it)
submitted the whole task there and then (the browser's implicit form submission), flagged and
without the choice they were about to make. Submitting is Ctrl+Enter everywhere on the page; Enter
in the reason box now just leaves it, so the keys work on the task again."""

from __future__ import annotations

import pytest

from annotate.models import Annotation
from tests.e2e.conftest import settle
from tests.e2e.test_probe_plabel_helpers import submit_and_wait

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_enter_in_the_flag_reason_does_not_submit(page, labeling_page):
    _, first = labeling_page("fay", tasks=3, name="Flags")
    page.keyboard.press("f")
    page.keyboard.type("It contains a phone number")
    page.keyboard.press("Enter")
    page.wait_for_timeout(500)
    settle(page)
    assert not Annotation.objects.exists()
    assert page.get_attribute("#task-slot .task", "data-assignment-id") == str(first)
    # The keys work on the task again: choose, then submit.
    page.keyboard.press("2")
    assert page.is_checked("#task-slot input[name=choice][value=right]")
    submit_and_wait(page, first)
    annotation = Annotation.objects.get()
    assert annotation.flagged and annotation.flag_reason == "It contains a phone number"
    assert annotation.choice is not None
