"""Soft labels and skipped held-out evaluation as a researcher reads them.

* A reward/DPO run whose held-out file had no usable pair ends with ``eval_skipped`` (a note) and
  no held-out figure: the run page says so (escaped: the note names the file), instead of simply
  showing no held-out figure; and it says whether the run trained on soft labels / margins.
* An export with ``soft_labels`` (and ``margin``) says in its dataset card what ``p_chosen`` and
  ``margin`` mean, so that whoever trains on the files elsewhere reads them right.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse

from tests.training.conftest import make_run
from tests.training.test_export_counts import _card, _export, adjudicated  # noqa: F401
from training.models import RunState

pytestmark = pytest.mark.django_db

NOTE = "held-out split: 0 usable pairs of 3 rows (3 ties); evaluation skipped <b>x.jsonl</b>"


def test_run_page_says_evaluation_was_skipped_and_soft_labels_were_used(client, project, researcher):
    final = {
        "train_loss": 0.5,
        "train_pairs": 8,
        "used_margin": False,
        "used_soft_labels": True,
        "eval_skipped": NOTE,
        "step": 4,
    }
    run = make_run(project, state=RunState.DONE, metrics={"final": final})
    client.force_login(researcher)
    html = client.get(reverse("training:run_detail", args=[project.slug, run.pk])).content.decode()
    assert "evaluation skipped" in html  # the note is on the page ...
    assert "&lt;b&gt;x.jsonl&lt;/b&gt;" in html and "<b>x.jsonl</b>" not in html  # ... escaped
    assert "Soft labels" in html  # and what the run trained on
    summary = client.get(reverse("training:run_status", args=[project.slug, run.pk])).json()["summary_html"]
    assert "&lt;b&gt;x.jsonl&lt;/b&gt;" in summary and "<b>x.jsonl</b>" not in summary


def test_run_page_without_a_skip_note_says_nothing_about_it(client, project, researcher):
    run = make_run(
        project, state=RunState.DONE, metrics={"final": {"eval_accuracy": 0.7, "used_soft_labels": False}}
    )
    client.force_login(researcher)
    html = client.get(reverse("training:run_detail", args=[project.slug, run.pk])).content.decode()
    assert "evaluation skipped" not in html.lower()


def test_dataset_card_says_what_p_chosen_and_margin_mean(adjudicated):  # noqa: F811
    project, _, _ = adjudicated
    export = _export(project, soft_labels=True, margin=True)
    card = _card(export)
    assert "`p_chosen`" in card and "probability" in card
    assert "`margin`" in card and "strength" in card
    assert "p_chosen" in export.manifest["columns"]
    plain = _card(_export(project))
    assert "probability that" not in plain
    assert Path(export.path, "README.md").is_file()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_long_skip_note_wraps_on_a_narrow_page(new_page, make_project, labeler_in):
    from tests.e2e.conftest import login

    project = make_project()
    labeler_in(project, "res", role="researcher")
    note = "held-out split: 0 usable pairs of 3 rows (3 ties); evaluation skipped " + "x" * 400 + ".jsonl"
    final = {"train_loss": 0.5, "used_soft_labels": True, "eval_skipped": note}
    run = make_run(project, state=RunState.DONE, metrics={"final": final})
    page = new_page(width=390, height=800)
    login(page, "res")
    page.goto(reverse("training:run_detail", args=[project.slug, run.pk]))
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    summary = page.inner_text("#run-summary")
    assert "Held-out evaluation skipped" in summary and "Soft labels (p_chosen)" in summary
