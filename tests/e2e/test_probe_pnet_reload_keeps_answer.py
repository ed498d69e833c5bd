"""A labeler on a bad network: the submit could not reach the server ("Your answer is still here:
try again"), and the labeler reloads the page to try again. The server gives the same task back
(their lease is still live).

Before: the reload showed the task blank: the choice, the strength, the ratings, the rationale and
the flag they had entered were gone, although the page had just told them their answer was still
there. Now a submit that fails keeps a copy of the answer in the tab (sessionStorage), a reload
showing that same task puts it back and says so, and a successful submit forgets it."""

from __future__ import annotations

import pytest

from annotate.models import Annotation, Assignment, TaskKind
from tests.e2e.conftest import settle
from tests.e2e.test_labeling_pairwise import canonical_for, current_id, wait_for_new_task

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RATIONALE = "Response 2 reads the whole 40 GB file into memory."
FLAG = "The prompt names a real person"


def fail_submit_then_reload(page, assignment_id: int) -> None:
    """Ctrl+Enter while offline (the submit never reaches the server), then reload the page once
    back online: the same task comes back."""
    page.route("**/submit/", lambda route: route.abort("internetdisconnected"))
    page.keyboard.press("Control+Enter")
    page.wait_for_selector(".task .form-error:not([hidden])")
    settle(page)
    page.unroute("**/submit/")
    page.reload()
    page.wait_for_selector("#task-slot .task")
    settle(page)
    assert current_id(page) == assignment_id


def test_a_reload_after_a_failed_submit_brings_the_answer_back(page, labeling_page):
    _, first = labeling_page(
        "rex",
        tasks=4,
        name="Reload after failure",
        strength_scale=True,
        dimensions=[{"label": "Clarity"}],
        rating_scale_max=5,
    )
    page.keyboard.press("1")
    page.keyboard.press("w")
    page.click(
        ".task .response[data-position='0'] fieldset[data-dimension=clarity] .scale-option:nth-child(4)"
    )
    page.click(
        ".task .response[data-position='1'] fieldset[data-dimension=clarity] .scale-option:nth-child(2)"
    )
    page.fill(".task textarea[name=rationale]", RATIONALE)
    page.click(".task .flag-toggle")
    page.fill(".task input[name=flag_reason]", FLAG)
    page.locator(".task").focus()

    fail_submit_then_reload(page, first)
    assert page.is_checked(".task input[name=choice][value=left]")
    assert page.is_checked(".task input[name=strength][value='2']")
    assert page.is_checked(".task input[name='rating-clarity-0'][value='4']")
    assert page.is_checked(".task input[name='rating-clarity-1'][value='2']")
    assert page.input_value(".task textarea[name=rationale]") == RATIONALE
    assert page.is_checked(".task input[name=flagged]")
    assert page.is_visible(".task .flag-reason")
    assert page.input_value(".task input[name=flag_reason]") == FLAG
    assert "back" in page.inner_text("#notice")

    page.keyboard.press("Control+Enter")
    wait_for_new_task(page, first)
    saved = Annotation.objects.get(assignment_id=first)
    assert saved.choice == canonical_for(Assignment.objects.get(pk=first), "left")
    assert (
        saved.strength == 2 and saved.rationale == RATIONALE and saved.flagged and saved.flag_reason == FLAG
    )
    assert page.evaluate("() => Object.keys(sessionStorage).filter(k => k.includes('draft')).length") == 0
    assert page.recorder.page_errors == [] and page.recorder.csp_violations == []


def rank_order(page) -> list[str]:
    return page.eval_on_selector_all(".task .rank-item", "els => els.map(e => e.dataset.position)")


def test_a_reload_after_a_failed_submit_brings_a_ranking_back(page, labeling_page):
    _, first = labeling_page("rae", tasks=3, per_task=3, name="Reload a ranking", kind=TaskKind.RANKING)
    page.keyboard.press("Shift+ArrowDown")  # the first response goes one place down
    order = rank_order(page)
    assert order == ["1", "0", "2"]

    fail_submit_then_reload(page, first)
    assert rank_order(page) == order
    page.keyboard.press("Control+Enter")  # submitted as moved: no "you haven't changed the order"
    wait_for_new_task(page, first)
    assert Annotation.objects.filter(assignment_id=first).count() == 1
    assert page.recorder.page_errors == [] and page.recorder.csp_violations == []
