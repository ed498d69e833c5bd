"""A researcher opens the model leaderboard from the report page in a real browser: the ranking,
W/T/L, the robustness line, the style toggle and the CSV; a model name with markup stays text."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.annotate.test_leaderboard_page import EVIL, seed_arena
from tests.e2e.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_researcher_reads_the_leaderboard(page, screenshot, make_project, labeler_in):
    project = make_project(name="Arena round 1")
    labelers = [labeler_in(project, f"arena-{i}") for i in range(4)]
    anns = seed_arena(project, labelers, seed=5)
    researcher = labeler_in(project, "rhea", role="researcher")

    login(page, researcher.username)
    page.goto(f"/reports/{project.slug}/")
    with page.expect_navigation():
        page.click("text=Model leaderboard")
    assert page.url.endswith(f"/projects/{project.slug}/reports/leaderboard/")
    assert page.inner_text("h1") == "Arena round 1"
    assert page.inner_text("[data-metric=votes]") == str(len(anns))
    rows = page.locator("#leaderboard-table tbody tr")
    assert rows.count() == 3
    assert rows.first.locator("th").inner_text() == "model-0"
    evil_row = page.locator("#leaderboard-table tbody tr", has_text=EVIL)
    assert evil_row.count() == 1  # shown as text, not turned into an element
    assert page.locator("#leaderboard-table img").count() == 0
    assert page.inner_text("#robustness").startswith("Robustness:")
    assert page.locator("svg.rp-chart").count() == 1
    assert page.recorder.dialogs == []
    assert page.recorder.csp_violations == [] and page.recorder.page_errors == []
    screenshot(page, "leaderboard")

    page.click("#style-on")
    page.wait_for_load_state("networkidle")
    assert page.locator("#style-table tbody tr").count() == 4
    assert page.inner_text("#style-table tbody tr:first-child td") != "0.000"  # length was fitted
    assert page.get_attribute("#style-on", "aria-current") == "true"
    with page.expect_download() as info:
        page.click("#leaderboard-csv")
    text = Path(info.value.path()).read_text(encoding="utf-8")
    assert text.startswith("rank,model,rating") and "model-0" in text
    assert info.value.suggested_filename == f"{project.slug}-leaderboard-style.csv"
    screenshot(page, "leaderboard-style")
    assert page.recorder.csp_violations == [] and page.recorder.page_errors == []
