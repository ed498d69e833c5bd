"""A labeler on a slow network: the submit takes a while to answer, and meanwhile the labeler
presses another choice (or clicks it).

Before: the page had sent the first choice already, yet it showed the new one selected until the
answer came and the page moved on with "Submitted.": what was saved was not what the labeler last
saw (the task looked only dimmed). Now the answer on screen cannot change while it is being saved,
and a key pressed meanwhile is answered with "Still saving"."""

from __future__ import annotations

import pytest

from annotate.models import Annotation, Assignment
from tests.e2e.conftest import settle
from tests.e2e.test_labeling_pairwise import canonical_for, wait_for_new_task
from tests.e2e.test_probe_plabel_helpers import release_held, submit_held

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_answer_being_saved_cannot_change_on_screen(page, labeling_page):
    _, first = labeling_page("sam", tasks=4, name="Slow saves")
    held = submit_held(page)
    page.keyboard.press("2")  # the labeler changes their mind while the answer is on its way
    page.click(".task input[name=choice][value=right]", force=True, timeout=2000)
    assert page.is_checked(".task input[name=choice][value=left]")
    assert not page.is_checked(".task input[name=choice][value=right]")
    assert "Still saving" in page.inner_text("#toast")

    release_held(page, held)
    wait_for_new_task(page, first)
    settle(page)
    saved = Annotation.objects.get(assignment_id=first)
    assert saved.choice == canonical_for(Assignment.objects.get(pk=first), "left")
    assert page.recorder.page_errors == [] and page.recorder.csp_violations == []
