"""The run page a researcher reads (issue 14): the few metrics that matter under readable names,
a clean, wrapped log, and a page no wider than the window."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from tests.e2e.conftest import login
from tests.training.conftest import make_run
from training.models import MetricPoint, RunState
from training.selectors import clean_log, metric_label, run_summary

FINAL = {
    "step": 120,
    "eval_accuracy": 0.66,
    "eval_before_accuracy": 0.51,
    "eval_margin": 0.42,
    "eval_loss": 0.61,
    "loss": 0.55,
    "train_runtime": 81.2,
    "train_samples_per_second": 11.8,
    "grad_norm": 1.9,
    "learning_rate": 1e-5,
    **{f"rewards/chosen_layer_{i}": i / 10 for i in range(30)},
    "output_dir": "/tmp/out",
}
LOG = (
    "\x1b[32mINFO\x1b[0m loading the model\n"
    "  0%|          | 0/120 [00:00<?, ?it/s]\r 50%|#####     | 60/120 [00:30<00:30]\r100%|##########| 120/120 [01:00<00:00]\n"
    + "x" * 5000
    + "\n\x1b]0;title\x07done\n"
)


def test_log_lines_lose_ansi_codes_and_progress_bar_redraws():
    text = clean_log(LOG)
    assert "\x1b" not in text and "\x07" not in text
    assert "INFO loading the model" in text
    assert "100%|##########| 120/120" in text and "50%" not in text
    assert text.endswith("done\n")


def test_summary_names_and_orders_the_metrics_that_matter():
    summary = run_summary(FINAL)
    headline = [label for label, _ in summary["headline"]]
    assert headline[:3] == [
        "Held-out accuracy",
        "Held-out accuracy before training",
        "Held-out reward margin",
    ]
    assert len(headline) <= 8
    labels = headline + [label for label, _ in summary["other"]]
    assert all("_" not in label for label in labels)
    assert "Step" not in labels and "step" not in labels  # the step is shown once, by the state
    assert metric_label("rewards/chosen_layer_3") == "Rewards · chosen layer 3"


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_run_page_is_readable_at_1280(new_page, make_project, labeler_in, screenshot):
    project = make_project()
    labeler_in(project, "res", role="researcher")
    log = Path(settings.PREFHUB_DATA_DIR) / "run-log.txt"
    log.write_text(LOG)
    run = make_run(
        project,
        state=RunState.DONE,
        log_path=str(log),
        config={"learning_rate": 1e-5, "very_long_option_" + "y" * 300: True},
        metrics={"final": FINAL, "latest": {"step": 120}},
    )
    MetricPoint.objects.bulk_create(
        [
            MetricPoint(run=run, step=s, values={"loss": 1 / (s + 1), "eval_accuracy": s / 200})
            for s in range(0, 121, 10)
        ]
    )
    page = new_page(width=1280, height=800)
    login(page, "res")
    page.goto(reverse("training:run_detail", args=[project.slug, run.pk]))
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    summary = page.inner_text("#run-summary")
    assert "Held-out accuracy" in summary and "eval_accuracy" not in summary
    assert "Step" in summary and summary.count("Step") == 1
    assert "\x1b" not in page.inner_text("#run-log")
    assert page.locator("#run-charts figure").count() >= 2
    screenshot(page, "run-page-1280", full_page=True)
