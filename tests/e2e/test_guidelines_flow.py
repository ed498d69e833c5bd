"""A manager publishes new guidelines; a labeler in the middle of a session must acknowledge them."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from annotate.models import Annotation, AuditEvent, Guideline, Role
from annotate.services.guidelines import guideline_acknowledge, guideline_publish
from tests.e2e.conftest import login, settle
from tests.e2e.labeling_data import make_tasks

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

V1 = "# Judging\n\nPrefer the response that solves the problem."
V2 = """# Judging

Prefer the response that **solves the problem**, then the clearer one.

## Safety

- Flag personal data (emails, phone numbers).
- A confident wrong answer is worse than an honest "I don't know".

```text
Example: "Call me at 555-0100" -> flag it
```
"""


def test_new_guideline_version_must_be_acknowledged_mid_session(
    page, new_page, make_project, labeler_in, screenshot
):
    project = make_project(name="Helpfulness round 2")
    make_tasks(project, count=3)
    labeler = labeler_in(project, "dana")
    manager = labeler_in(project, "erin", role=Role.MANAGER)
    v1 = guideline_publish(project=project, actor=manager, body=V1)
    guideline_acknowledge(guideline=v1, user=labeler)

    # The labeler is working.
    login(page, "dana")
    page.goto(f"/projects/{project.slug}/label/")
    page.wait_for_selector("#task-slot .task")
    settle(page)
    first = int(page.get_attribute("#task-slot .task", "data-assignment-id"))

    # Meanwhile the manager edits and publishes version 2, with a live preview.
    boss = new_page()
    login(boss, "erin")
    boss.goto(f"/projects/{project.slug}/manage/guidelines/")
    boss.fill("textarea[name=body]", V2)
    boss.wait_for_selector("#guideline-preview h2:has-text('Safety')")
    assert boss.inner_html("#guideline-preview").count("<li>") == 2
    boss.fill("input[name=change_note]", "Added a safety section")
    boss.evaluate("window.scrollTo(0, 0)")
    screenshot(boss, "guideline-editor", full_page=False)
    boss.click("button:has-text('Publish version 2')")
    boss.wait_for_selector("text=Published version 2")
    settle(boss)
    v2 = Guideline.objects.get(project=project, version=2)
    assert v2.body == V2.strip() and v2.author == manager
    assert AuditEvent.objects.filter(action="guideline.publish", target_id=str(v2.pk), actor=manager).exists()

    # History and diff.
    boss.click("a:has-text('Changes from v1')")
    boss.wait_for_selector(".diff-table")
    assert "Safety" in boss.inner_text(".diff-table .diff-add >> nth=0") or "Safety" in boss.inner_text(
        ".diff-table"
    )
    screenshot(boss, "guideline-diff", full_page=False)
    assert boss.recorder.csp_violations == [] and boss.recorder.page_errors == []

    # The labeler's next submission is refused until they read v2.
    page.keyboard.press("1")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#ack-dialog[open]")
    settle(page)
    assert "version 2" in page.inner_text("#ack-title")
    assert "Added a safety section" in page.inner_text("#ack-dialog")
    assert page.inner_html("#ack-dialog .ack-body").count("<li>") == 2
    assert not Annotation.objects.exists()
    # Escape does not dismiss it; shortcuts do nothing behind it.
    page.keyboard.press("Escape")
    page.keyboard.press("2")
    assert page.is_visible("#ack-dialog")
    page.click("#ack-dialog [data-action=ack]")
    page.wait_for_selector("#ack-dialog", state="hidden")
    settle(page)
    assert labeler.guideline_acks.filter(guideline=v2).exists()
    # The answer is still there; submitting now works and records v2.
    assert page.is_checked("#task-slot input[name=choice][value=left]")
    page.keyboard.press("Control+Enter")
    page.wait_for_function(
        "old => document.querySelector('#task-slot .task').dataset.assignmentId !== String(old)", arg=first
    )
    annotation = Annotation.objects.get(assignment_id=first)
    assert annotation.guideline == v2
    # The guidelines panel shows the new version.
    page.keyboard.press("g")
    assert "Safety" in page.inner_text("#drawer-guideline")
    assert page.recorder.csp_violations == [] and page.recorder.page_errors == []


def test_manager_screens_render_without_csp_errors(page, make_project, labeler_in, screenshot):
    project = make_project(name="Ops review", dimensions=[{"label": "Helpfulness", "required": True}])
    make_tasks(project, count=4)
    manager = labeler_in(project, "fay", role=Role.MANAGER)
    labeler_in(project, "gus")
    guideline_publish(project=project, actor=manager, body=V1)
    login(page, "fay")
    for path, name in (
        ("manage/", "manage-progress"),
        ("manage/settings/", "manage-settings"),
        ("manage/members/", "manage-members"),
        ("manage/import/", "manage-import"),
    ):
        page.goto(f"/projects/{project.slug}/{path}")
        page.wait_for_load_state("networkidle")
        screenshot(page, name)
    # Add a labeler through the form: a new account and its one-time password.
    page.goto(f"/projects/{project.slug}/manage/members/")
    page.fill("input[name=username]", "hank")
    page.select_option("select[name=role]", "labeler")
    page.click("button:has-text('Add member')")
    page.wait_for_selector("#initial-password")
    password = page.inner_text("#initial-password")
    assert get_user_model().objects.get(username="hank").check_password(password)
    screenshot(page, "manage-members-created", full_page=False)
    # Settings: add a dimension row with the button, save.
    page.goto(f"/projects/{project.slug}/manage/settings/")
    page.click("#add-dimension")
    page.locator(".dimension-row").last.locator("input[name$=-label]").fill("Honesty")
    page.click("button:has-text('Save settings')")
    page.wait_for_selector("text=Settings saved")
    assert list(project.dimensions.values_list("key", flat=True)) == ["helpfulness", "honesty"]
    page.goto(f"/projects/{project.slug}/manage/audit/")
    assert "dimensions" in page.inner_text(
        "table"
    ) and "helpfulness (required) → helpfulness (required), honesty" in page.inner_text("table")
    screenshot(page, "manage-audit")
    assert page.recorder.csp_violations == [] and page.recorder.page_errors == []
