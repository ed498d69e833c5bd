"""The run page's summary shows a run's final figures as the run reported them: a small value (a KL
of 3e-05 nats, a learning rate of 1e-05, a margin of -2e-05) is that value, not "0.0000", which the
chart beside it (``selectors._fmt``) and the metrics file contradict."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.training.conftest import make_run
from training.models import RunState

pytestmark = pytest.mark.django_db

FINAL = {
    "step": 40,
    "kl": 3e-05,
    "eval_margin": -2e-05,
    "eval_accuracy": 0.625,
    "learning_rate": 1e-05,
    "train_runtime": 81.2,
    "loss": 0.0,
}


def _summary_figures(html: str) -> dict[str, str]:
    return dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]*)</dd>", html))


def test_small_final_figures_are_not_shown_as_zero(client, project, researcher):
    run = make_run(project, kind="ppo", state=RunState.DONE, metrics={"final": FINAL, "latest": {"step": 40}})
    client.force_login(researcher)
    page = client.get(reverse("training:run_detail", args=[project.slug, run.pk]))
    assert page.status_code == 200
    figures = _summary_figures(page.content.decode())
    kl = figures["KL to the reference (nats)"]
    assert float(kl) == pytest.approx(3e-05, rel=1e-3), kl
    assert float(figures["Held-out reward margin"]) == pytest.approx(-2e-05, rel=1e-3)
    assert float(figures["Learning rate"]) == pytest.approx(1e-05, rel=1e-3)
    # what the page showed before for the ordinary figures stays as it was
    assert figures["Held-out accuracy"] == "0.6250"
    assert figures["Training time (s)"] == "81.2000"
    assert figures["Training loss"] == "0"
    # the JSON the page polls renders the same summary
    polled = client.get(reverse("training:run_status", args=[project.slug, run.pk])).json()
    assert _summary_figures(polled["summary_html"]) == figures
