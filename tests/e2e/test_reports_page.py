"""A manager opens the report of a seeded project in a real browser and sees the numbers that
annotate.agreement computes for the same data; then sends the most split tasks back."""

from __future__ import annotations

import numpy as np
import pytest
from django.template.defaultfilters import floatformat

from annotate import agreement as ag
from annotate.models import Task
from tests.annotate.test_reports import CATS, reliability, seed_pairwise
from tests.conftest import add_tasks
from tests.e2e.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_manager_reads_the_report_and_sends_tasks_back(page, screenshot, make_project, labeler_in):
    project = make_project(name="Helpfulness round 2", overlap=3, dimensions=["Helpfulness"])
    add_tasks(project, prompts=14, candidates_per_prompt=3, seed=4)
    labelers = [labeler_in(project, name) for name in ("ana", "bo", "chen", "dana", "eli")]
    manager = labeler_in(project, "manager-mia", role="manager")
    anns = seed_pairwise(project, labelers, seed=11, days=6)

    code = {c: i for i, c in enumerate(CATS)}
    alpha = ag.krippendorff_alpha(reliability(anns, lambda a: code.get(a.choice)), "nominal")
    choice_anns = [a for a in anns if a.choice]
    loo = ag.leave_one_out_agreement(
        [a.task_id for a in choice_anns],
        [a.labeler_id for a in choice_anns],
        [code[a.choice] for a in choice_anns],
    )
    ana = int(np.flatnonzero(loo.labelers == labelers[0].pk)[0])

    login(page, manager.username)
    page.goto(f"/reports/{project.slug}/")
    assert page.inner_text("h1") == "Helpfulness round 2"
    assert page.inner_text("[data-metric=alpha]") == floatformat(alpha, 3)
    row = page.locator("tr[data-labeler=ana]")
    assert (
        row.locator("[data-col=consensus]")
        .inner_text()
        .startswith(floatformat(loo.agree[ana] / loo.total[ana], 3))
    )
    assert "position bias" in row.inner_text()  # ana always picks the left response
    assert page.locator("svg.rp-chart").count() >= 4
    assert page.locator("#leaderboard-table tbody tr").count() == 3
    assert page.recorder.csp_violations == [] and page.recorder.page_errors == []
    screenshot(page, "reports")

    # the reliability model's labeler estimates, worst first, linked to the review drill-down
    rel_rows = page.locator("#reliability-table tbody tr")
    assert rel_rows.count() == 5
    assert page.inner_text("#reliability-threshold") == "0.60"
    ana_rel = page.locator("tr[data-reliability-labeler=ana]")
    assert ana_rel.locator("a").get_attribute("href").endswith("?labeler=ana")
    accuracies = [float(t) for t in page.locator("#reliability-table [data-col=accuracy]").all_inner_texts()]
    assert accuracies == sorted(accuracies)
    page.locator("#reliability").scroll_into_view_if_needed()
    screenshot(page, "reports-reliability", full_page=False)

    split = page.locator("#low-agreement-table input[name=task_ids]")
    assert split.count() > 0
    task_id = int(split.first.get_attribute("value"))
    before = Task.objects.get(pk=task_id).target_labels
    split.first.check()
    page.select_option("#extra-labels", "2")
    with page.expect_navigation():
        page.click("button:has-text('Send back')")
    assert f"/reports/{project.slug}/" in page.url
    assert Task.objects.get(pk=task_id).target_labels == before + 2
    assert page.recorder.csp_violations == []


def test_labeler_cannot_open_the_report(page, make_project, labeler_in):
    project = make_project(name="Secret report")
    labeler = labeler_in(project, "just-a-labeler")
    login(page, labeler.username)
    resp = page.goto(f"/reports/{project.slug}/")
    assert resp.status == 403
