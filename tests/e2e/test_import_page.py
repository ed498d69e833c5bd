"""The manager's import page in Chromium: a failed import reports at the top and keeps the file."""

from __future__ import annotations

import json

import pytest

from annotate.models import Prompt
from tests.e2e.conftest import login, settle

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _line(i: int, **over) -> str:
    row = {"id": f"p{i}", "prompt": f"Question {i}?", "candidates": [{"text": "One"}, {"text": "Two"}]}
    row.update(over)
    return json.dumps(row)


def test_a_failed_import_shows_its_report_first_and_keeps_the_file(
    page, make_project, labeler_in, screenshot, tmp_path
):
    project = make_project(name="Imports")
    labeler_in(project, "mgr", role="manager")
    lines = [_line(i) for i in range(30)]
    lines[17] = _line(17, candidates="not a list")
    upload = tmp_path / "prompts.jsonl"
    upload.write_text("\n".join(lines) + "\n")

    page.set_viewport_size({"width": 1280, "height": 800})
    login(page, "mgr")
    page.goto(f"/projects/{project.slug}/manage/import/")
    page.set_input_files("input[type=file]", str(upload))
    page.click("#import-form button[type=submit]")
    report = page.locator("#import-report")
    report.wait_for(state="visible")
    settle(page)
    assert "Nothing was imported" in report.inner_text()
    assert "18" in report.locator(".errors-table").inner_text()  # the line number of the bad line
    box = report.bounding_box()
    assert box is not None and -1 <= box["y"] < 800, "the report must be on screen without scrolling"
    assert page.evaluate("document.querySelector('input[type=file]').files.length") == 1
    assert Prompt.objects.filter(project=project).count() == 0
    screenshot(page, "import-failed", full_page=False)

    # Same file, now with "import the good lines": no need to choose it again.
    page.check("input[name=skip_invalid]")
    page.click("#import-form button[type=submit]")
    page.locator("#import-report h2", has_text="Imported").wait_for()
    settle(page)
    assert Prompt.objects.filter(project=project).count() == 29
    assert not page.recorder.csp_violations and not page.recorder.page_errors
