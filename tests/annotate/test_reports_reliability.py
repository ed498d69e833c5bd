"""The agreement report's "Labeler reliability" block: the reliability model's per-labeler
estimates reach managers (page, CSV, JSON); a planted random labeler is flagged and ranked worst;
nothing is dropped because of a flag; names are escaped; ranking projects say what the model covers."""

from __future__ import annotations

import csv
import io
import json
import random

import pytest
from django.urls import reverse

from annotate import reliability as rel
from annotate.models import Annotation, AnnotationReview, AnnotationSource, ReviewVerdict, Task, TaskKind
from annotate.services import reports
from tests.conftest import add_tasks

CATS = ["a", "b", "tie", "both_bad"]


def seed_with_spammer(project, good, bad, *, seed=3):
    """Every task labeled by all of ``good`` (the truth 90% of the time) and ``bad`` (uniformly
    random over the four answers)."""
    rng = random.Random(seed)
    rows = []
    for task in Task.objects.filter(project=project).prefetch_related("slots").order_by("id"):
        slots = [s.candidate_id for s in sorted(task.slots.all(), key=lambda s: s.slot)]
        truth = rng.choice(["a", "b"])
        for lab in [*good, bad]:
            shown = slots[:] if rng.random() < 0.5 else slots[::-1]
            steady = lab != bad and rng.random() < 0.9
            choice = truth if steady else rng.choice(CATS)
            rows.append(Annotation(task=task, labeler=lab, choice=choice, shown_order=shown))
    Annotation.objects.bulk_create(rows)


@pytest.fixture
def campaign(make_project, labeler_in):
    project = make_project(name="Reliability project", overlap=5)
    add_tasks(project, prompts=20, candidates_per_prompt=3, seed=2)  # 60 pairwise tasks
    good = [labeler_in(project, f"steady{i}") for i in range(4)]
    bad = labeler_in(project, "<b>spam</b>")
    manager = labeler_in(project, "boss", role="manager")
    seed_with_spammer(project, good, bad)
    return project, good, bad, manager


def test_block_flags_the_random_labeler_and_ranks_them_worst(campaign):
    project, good, bad, _ = campaign
    block = reports.report_build(project, bootstrap=10, ci_resamples=10)["reliability"]
    assert block["covered"] is True
    assert block["threshold"] == rel.flag_threshold() == 0.6
    rows = block["rows"]
    assert rows[0]["labeler_id"] == bad.pk  # worst first
    assert {r["labeler_id"] for r in rows} == {u.pk for u in [*good, bad]}
    by_id = {r["labeler_id"]: r for r in rows}
    assert by_id[bad.pk]["flagged"] and by_id[bad.pk]["accuracy"] < 0.6
    for u in good:
        assert not by_id[u.pk]["flagged"] and by_id[u.pk]["accuracy"] > by_id[bad.pk]["accuracy"]
        assert by_id[u.pk]["labels"] == 60
    assert block["flagged"] == 1 and block["labels"] == 300 and block["items"] == 60
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert all(r["is_judge"] is False for r in rows)
    # a flag only marks: the flagged labeler's annotations still count in every other figure
    report = reports.report_build(project, bootstrap=10, ci_resamples=10)
    assert report["totals"]["annotations"] == 300
    assert any(r["labeler_id"] == bad.pk and r["annotations"] == 60 for r in report["labelers"])


def test_the_threshold_is_a_setting(campaign, settings):
    project, *_ = campaign
    settings.PREFHUB_RELIABILITY_THRESHOLD = 0.0
    block = reports.report_build(project, bootstrap=10, ci_resamples=10)["reliability"]
    assert block["threshold"] == 0.0 and block["flagged"] == 0


def test_report_and_export_fit_the_same_model(campaign):
    """One home for annotations -> labels: the report's estimates equal the export compiler's."""
    from training.compiler import ExportOptions, fit_reliability
    from training.services.exports import records_stream

    project, *_ = campaign
    block = reports.report_build(project, bootstrap=10, ci_resamples=10)["reliability"]
    model = fit_reliability(
        records_stream(project=project, with_texts=False, fields=("source", "shown_order")),
        ExportOptions(),
    )
    export_rows = {r["labeler_id"]: r for r in model.summary()["labelers"]}
    for r in block["rows"]:
        assert r["accuracy"] == export_rows[r["labeler_id"]]["accuracy"]
        assert r["position_bias"] == export_rows[r["labeler_id"]]["position_bias"]


def test_rejected_annotations_are_left_out_of_the_fit(campaign):
    project, _, bad, _ = campaign
    rejected = list(Annotation.objects.filter(labeler=bad).order_by("id")[:10])
    AnnotationReview.objects.bulk_create(
        AnnotationReview(annotation=a, verdict=ReviewVerdict.REJECTED, reason="spam") for a in rejected
    )
    block = reports.report_build(project, bootstrap=10, ci_resamples=10)["reliability"]
    assert {r["labeler_id"]: r["labels"] for r in block["rows"]}[bad.pk] == 50


def test_page_csv_and_json_show_the_block_escaped(client, campaign):
    project, _, _, manager = campaign
    client.force_login(manager)
    html = client.get(reverse("reports:project", args=[project.slug])).content.decode()
    assert 'id="reliability-table"' in html and "Labeler reliability" in html
    assert 'id="reliability-threshold">0.60<' in html
    assert "&lt;b&gt;spam&lt;/b&gt;" in html and "<b>spam</b>" not in html
    review = reverse("review:queue", args=[project.slug])
    assert f'href="{review}?labeler=%3Cb%3Espam%3C/b%3E"' in html  # the drill-down, urlencoded
    section = html[html.index('id="reliability"') : html.index('id="confusion"')]
    assert section.count('data-flagged="1"') == 1 and section.count('data-flagged="0"') == 4
    assert section.index("&lt;b&gt;spam&lt;/b&gt;") < section.index("steady0")  # ranked first

    resp = client.get(reverse("reports:download", args=[project.slug, "reliability", "csv"]))
    assert resp.status_code == 200
    rows = list(csv.DictReader(io.StringIO(resp.content.decode())))
    assert len(rows) == 5
    assert rows[0]["username"] == "<b>spam</b>" and rows[0]["flagged"] == "True"
    assert {r["username"] for r in rows[1:]} == {f"steady{i}" for i in range(4)}
    assert all(r["threshold"] == "0.6" and r["flagged"] == "False" for r in rows[1:])
    body = json.loads(
        client.get(reverse("reports:download", args=[project.slug, "reliability", "json"])).content
    )
    assert body["columns"] == reports.RELIABILITY_COLUMNS and len(body["rows"]) == 5


def test_old_snapshots_without_the_block_still_download(campaign):
    columns, rows = reports.report_table({"labelers": []}, "reliability")
    assert columns == reports.RELIABILITY_COLUMNS and rows == []


def test_ranking_projects_say_what_the_model_covers(make_project, labeler_in, client):
    project = make_project(name="Ranked", kind=TaskKind.RANKING)
    add_tasks(project, prompts=2, candidates_per_prompt=3)
    manager = labeler_in(project, "mgr", role="manager")
    block = reports.report_build(project, bootstrap=10, ci_resamples=10)["reliability"]
    assert block["covered"] is False and block["rows"] == []
    assert "pairwise" in block["note"]
    client.force_login(manager)
    html = client.get(reverse("reports:project", args=[project.slug])).content.decode()
    assert 'id="reliability-note"' in html and "covers pairwise judgments" in html
    assert 'id="reliability-table"' not in html


def test_ai_judges_enter_the_model_marked_and_stay_out_of_the_human_tables(campaign, make_user, client):
    project, *_, manager = campaign
    judge_user = make_user("judge-bot")
    rows = []
    for task in Task.objects.filter(project=project).prefetch_related("slots").order_by("id"):
        slots = [s.candidate_id for s in sorted(task.slots.all(), key=lambda s: s.slot)]
        rows.append(
            Annotation(
                task=task, labeler=judge_user, choice="a", shown_order=slots, source=AnnotationSource.JUDGE
            )
        )
    Annotation.objects.bulk_create(rows)
    report = reports.report_build(project, bootstrap=10, ci_resamples=10)
    by_id = {r["labeler_id"]: r for r in report["reliability"]["rows"]}
    assert by_id[judge_user.pk]["is_judge"] is True and by_id[judge_user.pk]["labels"] == 60
    assert sum(r["is_judge"] for r in by_id.values()) == 1
    assert judge_user.pk not in {r["labeler_id"] for r in report["labelers"]}
    client.force_login(manager)
    html = client.get(reverse("reports:project", args=[project.slug])).content.decode()
    row = html[html.index('data-reliability-labeler="judge-bot"') :]
    row = row[: row.index("</tr>")]
    assert "(AI judge)" in row and "review" not in row  # no review drill-down for a judge
