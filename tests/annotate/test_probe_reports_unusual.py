"""Probe: the report page, every CSV/JSON download, the leaderboard page and CSV, the progress and
review pages on unusual projects answer 200 with strict JSON (no NaN/Infinity), and the figures
agree with a recomputation written here."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone

from annotate.models import Annotation, Assignment, AssignmentState, Guideline, Task, TaskKind
from annotate.services import reports
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


def _strict(raw: bytes):
    def bad(token):
        raise AssertionError(f"non-standard JSON constant {token} in the body")

    return json.loads(raw, parse_constant=bad)


def _hit_everything(client, project):
    slug = project.slug
    page = client.get(reverse("reports:project", args=[slug]))
    assert page.status_code == 200, page.content[:2000]
    text = page.content.decode()
    for token in ("NaN", "Infinity", "nan%", "inf%"):
        assert token not in text, token
    bodies = {}
    for table in reports.TABLES:
        resp = client.get(reverse("reports:download", args=[slug, table, "json"]))
        assert resp.status_code == 200, (table, resp.content[:500])
        bodies[table] = _strict(resp.content)
        resp = client.get(reverse("reports:download", args=[slug, table, "csv"]))
        assert resp.status_code == 200, table
        body = resp.content.decode()
        assert "nan" not in body.lower().replace("nano", ""), (table, body)
        list(csv.reader(io.StringIO(body)))
    for pair in ("0", "1", "99", "-5", "x", "", "1e9", "9" * 400):
        resp = client.get(reverse("reports:project", args=[slug]), {"pair": pair})
        assert resp.status_code == 200, pair
    for style in ("", "on", "off"):
        resp = client.get(reverse("annotate:leaderboard", args=[slug]), {"style": style})
        assert resp.status_code == 200, (style, resp.content[:1000])
        resp = client.get(reverse("annotate:leaderboard_csv", args=[slug]), {"style": style})
        assert resp.status_code == 200
        assert "nan" not in resp.content.decode().lower()
    assert client.get(reverse("annotate:leaderboard", args=[slug]), {"style": "maybe"}).status_code == 400
    resp = client.get(reverse("annotate:manage_progress", args=[slug]))
    assert resp.status_code == 200, resp.content[:2000]
    assert "NaN" not in resp.content.decode()
    resp = client.get(reverse("review:queue", args=[slug]))
    assert resp.status_code == 200, resp.content[:2000]
    return bodies


def _annotate(project, plan, *, guideline=None, source="human", strength=None):
    """plan: {labeler: [choice per task]} (None = not labeled)."""
    tasks = list(Task.objects.filter(project=project).order_by("id"))
    rows = []
    for lab, choices in plan.items():
        for task, choice in zip(tasks, choices, strict=False):
            if choice is None:
                continue
            kw = {"choice": choice} if isinstance(choice, str) else {"ranking": choice}
            rows.append(
                Annotation(
                    task=task,
                    labeler=lab,
                    shown_order=[],
                    guideline=guideline,
                    source=source,
                    time_spent_ms=1000,
                    strength=strength if kw.get("choice") in ("a", "b") else None,
                    **kw,
                )
            )
    Annotation.objects.bulk_create(rows)
    return tasks


@pytest.fixture
def manager(labeler_in):
    def _make(project):
        return labeler_in(project, f"mgr-{project.slug}", role="manager")

    return _make


def test_single_labeler(client, make_project, labeler_in, manager):
    project = make_project(dimensions=["Helpful"])
    add_tasks(project, prompts=6)
    ann = labeler_in(project, "solo")
    _annotate(project, {ann: ["a", "b", "tie", "both_bad", "a", "a"]})
    client.force_login(manager(project))
    bodies = _hit_everything(client, project)
    metrics = {r["scope"]: r for r in bodies["metrics"]["rows"]}
    overall = metrics["overall"]
    assert overall["items"] == 0
    assert overall["percent_agreement"] is None and overall["krippendorff_alpha"] is None
    assert overall["fleiss_kappa"] is None and overall["cohen_kappa_mean"] is None
    assert "Small sample" in overall["warning"]
    assert bodies["pairs"]["rows"] == []


@pytest.mark.parametrize("choice", ["tie", "both_bad"])
def test_every_judgment_the_same_non_preference(client, make_project, labeler_in, manager, choice):
    project = make_project()
    add_tasks(project, prompts=8)
    labs = [labeler_in(project, f"u{choice}{i}") for i in range(3)]
    _annotate(project, {lab: [choice] * 8 for lab in labs})
    client.force_login(manager(project))
    bodies = _hit_everything(client, project)
    overall = bodies["metrics"]["rows"][0]
    assert overall["percent_agreement"] == 1.0
    # no variation at all: alpha and kappa are undefined, reported as empty, never NaN
    assert overall["krippendorff_alpha"] is None
    assert overall["fleiss_kappa"] is None
    assert overall["cohen_kappa_mean"] is None
    board = bodies["leaderboard"]["rows"]
    assert len(board) == 2
    assert all(r["wins"] == 0 and r["losses"] == 0 and r["ties"] == 24 for r in board)
    assert abs(board[0]["elo"] - board[1]["elo"]) < 1e-6


def _fleiss(table):
    t = np.asarray(table, dtype=float)
    n = t.sum(axis=1)[0]
    p_i = ((t * (t - 1)).sum(axis=1)) / (n * (n - 1))
    p_j = t.sum(axis=0) / t.sum()
    pe = (p_j**2).sum()
    return (p_i.mean() - pe) / (1 - pe)


def _alpha_nominal(table):
    t = np.asarray(table, dtype=float)
    m = t.sum(axis=1)
    t, m = t[m >= 2], m[m >= 2]
    n = m.sum()
    o = (t * (t - 1)).sum(axis=1) / (m - 1)
    d_o = (n - o.sum()) / n
    nc = t.sum(axis=0)
    d_e = (n * n - (nc**2).sum()) / (n * (n - 1))
    return 1 - d_o / d_e


def test_one_task_only_figures_match(client, make_project, labeler_in, manager):
    project = make_project()
    add_tasks(project, prompts=1)
    labs = [labeler_in(project, f"one{i}") for i in range(4)]
    choices = ["a", "a", "b", "tie"]
    _annotate(project, {lab: [c] for lab, c in zip(labs, choices, strict=True)})
    client.force_login(manager(project))
    bodies = _hit_everything(client, project)
    overall = bodies["metrics"]["rows"][0]
    # 4 labels: pairs agreeing = 2 of 12 ordered pairs
    assert overall["percent_agreement"] == pytest.approx(2 / 12)
    table = [[2, 1, 1, 0]]
    assert overall["krippendorff_alpha"] == pytest.approx(_alpha_nominal(table))
    # Fleiss on a single subject: p_e from that subject alone
    assert overall["fleiss_kappa"] == pytest.approx(_fleiss(table))


def test_single_label_per_task(client, make_project, labeler_in, manager):
    project = make_project()
    add_tasks(project, prompts=6)
    a, b = labeler_in(project, "sa"), labeler_in(project, "sb")
    _annotate(project, {a: ["a", None, "b", None, "a", None], b: [None, "b", None, "a", None, "tie"]})
    client.force_login(manager(project))
    bodies = _hit_everything(client, project)
    overall = bodies["metrics"]["rows"][0]
    assert overall["items"] == 0 and overall["percent_agreement"] is None
    assert bodies["low_agreement"]["rows"] == []
    assert all(r["consensus_agreement"] is None for r in bodies["labelers"]["rows"])


def test_all_labelers_deactivated(client, make_project, labeler_in, manager):
    project = make_project()
    add_tasks(project, prompts=6)
    labs = [labeler_in(project, f"gone{i}") for i in range(2)]
    _annotate(project, {labs[0]: ["a"] * 6, labs[1]: ["a", "a", "b", "b", "a", "tie"]})
    for lab in labs:
        lab.is_active = False
        lab.save(update_fields=["is_active"])
    client.force_login(manager(project))
    bodies = _hit_everything(client, project)
    assert {r["username"] for r in bodies["labelers"]["rows"]} == {"gone0", "gone1"}
    assert bodies["metrics"]["rows"][0]["percent_agreement"] == pytest.approx(3 / 6)


def test_labels_only_from_ai_judges(client, make_project, labeler_in, manager):
    project = make_project()
    add_tasks(project, prompts=5)
    judges = [labeler_in(project, f"judge{i}") for i in range(2)]
    _annotate(project, {j: ["a", "b", "a", "b", "tie"] for j in judges}, source="judge")
    client.force_login(manager(project))
    bodies = _hit_everything(client, project)
    overall = bodies["metrics"]["rows"][0]
    assert overall["annotations"] == 0 and overall["percent_agreement"] is None
    assert bodies["labelers"]["rows"] == []


def test_only_imported_preferences(client, make_project, labeler_in, manager):
    project = make_project()
    add_tasks(project, prompts=6)
    srcs = [labeler_in(project, f"src{i}") for i in range(2)]
    _annotate(
        project,
        {srcs[0]: ["a", "a", "b", "b", "a", "b"], srcs[1]: ["a", "b", "b", "b", "a", "a"]},
        source="imported",
    )
    client.force_login(manager(project))
    bodies = _hit_everything(client, project)
    overall = bodies["metrics"]["rows"][0]
    assert overall["percent_agreement"] == pytest.approx(4 / 6)
    pair = bodies["pairs"]["rows"][0]
    # Cohen on [[2,1],[1,2]] (a, b only): po = 4/6, pe = 1/2
    assert pair["cohen_kappa"] == pytest.approx((4 / 6 - 0.5) / 0.5)


def test_gold_tasks_only(client, make_project, labeler_in, manager):
    project = make_project()
    add_tasks(project, prompts=4)
    Task.objects.filter(project=project).update(is_gold=True, gold_choice="a")
    a, b = labeler_in(project, "ga"), labeler_in(project, "gb")
    _annotate(project, {a: ["a", "a", "a", "b"], b: ["tie", "both_bad", "a", "a"]})
    client.force_login(manager(project))
    bodies = _hit_everything(client, project)
    rows = {r["username"]: r for r in bodies["labelers"]["rows"]}
    assert rows["ga"]["gold_accuracy"] == pytest.approx(3 / 4) and rows["ga"]["gold_items"] == 4
    assert rows["gb"]["gold_accuracy"] == pytest.approx(2 / 4)


def test_guideline_changed_half_way(client, make_project, labeler_in, manager):
    project = make_project()
    add_tasks(project, prompts=6)
    v1 = Guideline.objects.create(project=project, version=1, body="v1")
    v2 = Guideline.objects.create(project=project, version=2, body="v2")
    a, b = labeler_in(project, "va"), labeler_in(project, "vb")
    _annotate(
        project, {a: ["a", "b", "a", None, None, None], b: ["a", "a", "a", None, None, None]}, guideline=v1
    )
    _annotate(
        project,
        {a: [None, None, None, "b", "b", "tie"], b: [None, None, None, "b", "a", "tie"]},
        guideline=v2,
    )
    client.force_login(manager(project))
    bodies = _hit_everything(client, project)
    metrics = {r["scope"]: r for r in bodies["metrics"]["rows"]}
    assert metrics["guideline v1"]["percent_agreement"] == pytest.approx(2 / 3)
    assert metrics["guideline v2"]["percent_agreement"] == pytest.approx(2 / 3)
    for v in (1, 2):
        assert client.get(reverse("review:queue", args=[project.slug]), {"guideline": v}).status_code == 200
    resp = client.get(reverse("review:queue", args=[project.slug]), {"guideline": 7})
    assert resp.status_code == 200


def test_dimensions_without_ratings_and_no_strength(client, make_project, labeler_in, manager):
    project = make_project(dimensions=["Helpful", "Harmless"])
    add_tasks(project, prompts=5)
    a, b = labeler_in(project, "da"), labeler_in(project, "db")
    _annotate(project, {a: ["a", "b", "a", "b", "a"], b: ["a", "b", "b", "b", "a"]})
    client.force_login(manager(project))
    bodies = _hit_everything(client, project)
    dims = [r for r in bodies["metrics"]["rows"] if r["scope"].startswith("dimension")]
    assert len(dims) == 2
    assert all(r["annotations"] == 0 and r["percent_agreement"] is None for r in dims)
    assert bodies["reliability"]["rows"]


def test_labeler_who_skipped_everything(client, make_project, labeler_in, manager):
    project = make_project()
    add_tasks(project, prompts=3)
    skipper = labeler_in(project, "skipper")
    for task in Task.objects.filter(project=project):
        Assignment.objects.create(
            task=task,
            labeler=skipper,
            state=AssignmentState.SKIPPED,
            leased_at=timezone.now(),
            expires_at=timezone.now(),
            shown_order=[],
            skip_reason="other",
        )
    client.force_login(manager(project))
    bodies = _hit_everything(client, project)
    rows = bodies["labelers"]["rows"]
    assert len(rows) == 1 and rows[0]["username"] == "skipper" and rows[0]["skips"] == 3
    assert rows[0]["annotations"] == 0
    resp = client.get(
        reverse("review:queue", args=[project.slug]), {"state": "skipped", "labeler": "skipper"}
    )
    assert resp.status_code == 200 and b"skipper" in resp.content


@pytest.mark.parametrize("k", [2, 16])
def test_ranking_with_tied_groups(client, make_project, labeler_in, manager, k):
    project = make_project(kind=TaskKind.RANKING, ranking_k=k, allow_rank_ties=True, dimensions=["Helpful"])
    add_tasks(project, prompts=4, candidates_per_prompt=k)
    labs = [labeler_in(project, f"r{k}-{i}") for i in range(3)]
    tasks = list(Task.objects.filter(project=project).prefetch_related("slots").order_by("id"))
    rows = []
    for ti, task in enumerate(tasks):
        ids = [s.candidate_id for s in sorted(task.slots.all(), key=lambda s: s.slot)]
        for li, lab in enumerate(labs):
            if ti == 0:
                ranking = [ids]  # everything tied
            elif li == 0:
                ranking = [ids[:2], *[[c] for c in ids[2:]]]
            else:
                ranking = [[c] for c in ids]
            rows.append(Annotation(task=task, labeler=lab, ranking=ranking, shown_order=ids, time_spent_ms=5))
    Annotation.objects.bulk_create(rows)
    client.force_login(manager(project))
    bodies = _hit_everything(client, project)
    overall = bodies["metrics"]["rows"][0]
    assert overall["kendall_w_items"] >= 1
