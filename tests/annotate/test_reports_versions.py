"""Report fixes of issue 14: per-guideline-version rows used to drop a task labeled under two
versions (each version saw one label: no item anywhere but the overall row); now such tasks have a
"mixed versions" row and every row says how many tasks it has. Every agreement coefficient carries
a seeded bootstrap interval and a small-sample warning, on the page and in the CSV."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from annotate.models import Annotation, Guideline, Task
from annotate.services import reports
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def versioned(make_project, labeler_in):
    """Six tasks, two labels each: tasks 0-1 both under v1, tasks 2-3 both under v2, tasks 4-5 one
    label under v1 and one under v2 (the guidelines changed between the two labelers)."""
    project = make_project(name="Versions")
    add_tasks(project, prompts=6, candidates_per_prompt=2)
    ann, bob = labeler_in(project, "ann"), labeler_in(project, "bob")
    manager = labeler_in(project, "mgr", role="manager")
    v1 = Guideline.objects.create(project=project, version=1, body="v1")
    v2 = Guideline.objects.create(project=project, version=2, body="v2")
    tasks = list(Task.objects.filter(project=project).order_by("id"))
    plan = [
        (v1, v1, "a", "a"),
        (v1, v1, "a", "b"),
        (v2, v2, "b", "b"),
        (v2, v2, "a", "a"),
        (v1, v2, "a", "a"),
        (v1, v2, "b", "tie"),
    ]
    rows = []
    for task, (ga, gb, ca, cb) in zip(tasks, plan, strict=True):
        rows.append(Annotation(task=task, labeler=ann, choice=ca, guideline=ga, shown_order=[]))
        rows.append(Annotation(task=task, labeler=bob, choice=cb, guideline=gb, shown_order=[]))
    Annotation.objects.bulk_create(rows)
    return project, manager


def test_a_task_labeled_under_two_versions_is_counted_in_a_mixed_row(versioned):
    project, _ = versioned
    report = reports.report_build(project, bootstrap=10)
    rows = {b["version"]: b for b in report["by_guideline"]}
    assert rows[1]["items"] == 2 and rows[2]["items"] == 2
    assert "mixed" in rows, "tasks labeled under v1 and v2 must not vanish from the version rows"
    assert rows["mixed"]["items"] == 2 and rows["mixed"]["tasks"] == 2
    assert rows["mixed"]["annotations"] == 4
    # every labeled task is in exactly one version row; the overall row counts all
    assert sum(b["tasks"] for b in report["by_guideline"]) == report["totals"]["labeled_tasks"] == 6
    assert sum(b["items"] for b in report["by_guideline"]) == report["overall"]["items"] == 6
    assert report["overall"]["tasks"] == 6


def test_every_coefficient_has_an_interval_and_a_small_sample_warning(versioned):
    project, _ = versioned
    report = reports.report_build(project, bootstrap=10)
    overall = report["overall"]
    for name in ("percent_agreement", "krippendorff_alpha", "fleiss_kappa"):
        low, high = overall[f"{name}_low"], overall[f"{name}_high"]
        assert low is not None and low <= overall[name] <= high, name
    assert overall["small_sample"] is True
    assert any("6 items" in w and "30" in w for w in overall["warnings"])
    # the same seed gives the same intervals
    again = reports.report_build(project, bootstrap=10)["overall"]
    assert again["krippendorff_alpha_low"] == overall["krippendorff_alpha_low"]


def test_the_csv_and_the_page_show_tasks_intervals_and_warnings(client, versioned):
    project, manager = versioned
    client.force_login(manager)
    reports.report_compute_now(project=project, actor=manager)
    body = client.get(reverse("reports:download", args=[project.slug, "metrics", "csv"])).content.decode()
    rows = {r["scope"]: r for r in csv.DictReader(io.StringIO(body))}
    assert set(rows) >= {"overall", "guideline v1", "guideline v2", "guideline mixed versions"}
    assert rows["guideline mixed versions"]["tasks"] == "2"
    assert rows["overall"]["krippendorff_alpha_low"] and rows["overall"]["krippendorff_alpha_high"]
    assert "fewer than 30" in rows["overall"]["warning"]
    page = client.get(reverse("reports:project", args=[project.slug])).content.decode()
    assert "Mixed versions" in page
    assert 'data-ci="krippendorff_alpha"' in page
    assert "fewer than 30" in page
