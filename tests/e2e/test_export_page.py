"""The exports page in Chromium: a researcher sees the service's defaults (a held-out split), chooses
how final labels and AI judges' labels are treated, creates an export, and reads and downloads it."""

from __future__ import annotations

import pytest

from annotate.models import Annotation, Task
from annotate.services.review import task_adjudicate
from tests.conftest import add_tasks
from tests.e2e.conftest import login, settle
from training.models import Export, ExportState
from training.services.exports import export_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_researcher_exports_with_final_labels_and_downloads_it(page, make_project, labeler_in, screenshot):
    project = make_project(name="Export page", overlap=2)
    add_tasks(project, prompts=6)
    labelers = [labeler_in(project, name) for name in ("lena", "lars")]
    boss = labeler_in(project, "bea", role="manager")
    labeler_in(project, "rosa", role="researcher")
    tasks = list(Task.objects.filter(project=project).order_by("id"))
    Annotation.objects.bulk_create(
        [Annotation(task=t, labeler=u, choice="a") for t in tasks for u in labelers]
    )
    task_adjudicate(actor=boss, project=project, task_id=tasks[0].pk, choice="b", strength=3)

    page.set_viewport_size({"width": 1280, "height": 1000})
    login(page, "rosa")
    page.goto(f"/training/{project.slug}/exports/")
    form = page.locator("form.export-form")
    assert form.locator("input[name=test_size]").input_value() == "0.1"
    assert form.locator("select[name=adjudication]").input_value() == "prefer"
    assert form.locator("select[name=judge_labels]").input_value() == "include"
    form.locator("select[name=aggregate]").select_option("majority")
    form.locator("input[name=min_votes]").fill("2")
    form.locator("input[name=test_size]").fill("0")
    form.locator("input[name=labeled_by]").check()
    screenshot(page, "export-form", full_page=False)
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    settle(page)
    export = Export.objects.get(project=project)
    assert f"/exports/v{export.version}/" in page.url
    assert export.options["min_votes"] == 2 and export.options["labeled_by"] is True

    export_run(export_id=export.pk)  # what the worker does with the queued export
    assert Export.objects.get(pk=export.pk).state == ExportState.DONE
    page.reload()
    text = page.inner_text("main")
    assert "Done" in text and '"final_labels_exported": 1' in text
    assert "| labelers | 2 |" in text  # the adjudicator is no labeler
    with page.expect_download() as download:
        page.click("a[download]:text('train.jsonl')")
    rows = download.value.path().read_text().splitlines()
    assert len(rows) == 6  # every task; the adjudicated one by its final label despite min_votes 2
    screenshot(page, "export-detail", full_page=False)
    assert page.recorder.csp_violations == [] and page.recorder.page_errors == []
