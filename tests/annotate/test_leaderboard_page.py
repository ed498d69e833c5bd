"""The leaderboard page: votes from the database (pairwise and ranking, reviews respected),
Davidson fit with W/T/L and the robustness line, style toggle, CSV, access and bad input."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from django.core.cache import cache

from annotate.leaderboard import Votes, fit_davidson
from annotate.models import Annotation, AnnotationReview, Candidate, Task, TaskCandidate, TaskKind
from annotate.selectors_leaderboard import leaderboard_votes, project_leaderboard
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db

EVIL = "<img src=x onerror=alert(1)>"
FORMULA = '=HYPERLINK("http://x")'
TRUTH = {"model-0": 1.0, EVIL: 0.0, FORMULA: -1.0}


def seed_arena(project, labelers, *, seed: int = 0) -> list[Annotation]:
    """Three models (one with markup in its name, one that looks like a formula); every task
    judged by each labeler from Davidson probabilities with the TRUTH strengths."""
    add_tasks(project, prompts=12, candidates_per_prompt=3, seed=seed)
    Candidate.objects.filter(prompt__project=project, model_name="model-1").update(model_name=EVIL)
    Candidate.objects.filter(prompt__project=project, model_name="model-2").update(model_name=FORMULA)
    rng = np.random.default_rng(seed)
    for cand in Candidate.objects.filter(prompt__project=project):  # varied length and markdown
        bullets = "".join(f"- point {i}\n" for i in range(rng.integers(0, 4)))
        bold = "**note** " if rng.random() < 0.5 else ""
        cand.text = f"{bold}{'word ' * int(rng.integers(5, 120))}\n{bullets}"
        cand.save(update_fields=["text"])
    rows = []
    for task in Task.objects.filter(project=project).order_by("id"):
        a, b = (
            TaskCandidate.objects.filter(task=task)
            .order_by("slot")
            .values_list("candidate__model_name", flat=True)
        )
        d = TRUTH[a] - TRUTH[b]
        p = np.array([np.exp(d / 2), np.exp(-d / 2), 0.5, 0.25])
        for user in labelers:
            choice = ("a", "b", "tie", "both_bad")[rng.choice(4, p=p / p.sum())]
            rows.append(Annotation(task=task, labeler=user, choice=choice))
    cache.clear()
    return Annotation.objects.bulk_create(rows)


def test_votes_fit_and_counts_match_the_annotations(make_project, labeler_in):
    project = make_project()
    labelers = [labeler_in(project) for _ in range(4)]
    anns = seed_arena(project, labelers)
    pv = leaderboard_votes(project=project)
    assert len(pv.outcome) == len(anns)
    board = project_leaderboard(project=project, bootstrap_rounds=20)
    assert board["votes"] == len(anns)
    assert board["rows"][0]["model"] == "model-0"
    # the page's ratings are annotate.leaderboard's on the same votes
    fit = fit_davidson(Votes.build(pv.a, pv.b, pv.outcome, n_models=len(pv.names)))
    rating = dict(zip(pv.names, fit.ratings.tolist(), strict=True))
    for row in board["rows"]:
        assert row["rating"] == pytest.approx(rating[row["model"]], abs=0.1)
        assert row["games"] == row["wins"] + row["ties"] + row["both_bad"] + row["losses"]
    assert sum(r["games"] for r in board["rows"]) == 2 * len(anns)
    assert sum(r["wins"] for r in board["rows"]) == sum(r["losses"] for r in board["rows"])
    assert board["robustness"].startswith("robustness:")
    assert board["nu_tie"] > 0 and board["nu_both_bad"] > 0


def test_rejected_and_same_model_votes_are_left_out(make_project, labeler_in):
    project = make_project()
    labelers = [labeler_in(project) for _ in range(2)]
    anns = seed_arena(project, labelers)
    AnnotationReview.objects.create(annotation=anns[0], verdict="rejected", reason="spam")
    task = anns[1].task
    Candidate.objects.filter(task_slots__task=task).update(model_name="model-0")  # both sides: model-0
    pv = leaderboard_votes(project=project)
    same = sum(1 for a in anns if a.task_id == task.pk and a.pk != anns[0].pk)
    assert len(pv.outcome) == len(anns) - 1 - same


def test_ranking_judgments_become_pairwise_votes(make_project, labeler_in):
    project = make_project(kind=TaskKind.RANKING, ranking_k=3)
    user = labeler_in(project)
    add_tasks(project, prompts=1, candidates_per_prompt=3)
    task = Task.objects.get(project=project)
    c0, c1, c2 = (
        TaskCandidate.objects.filter(task=task).order_by("slot").values_list("candidate_id", flat=True)
    )
    Annotation.objects.create(task=task, labeler=user, ranking=[[c2, c0], c1])
    pv = leaderboard_votes(project=project)
    got = {(pv.names[a], pv.names[b], o) for a, b, o in zip(pv.a, pv.b, pv.outcome, strict=True)}
    m = dict(Candidate.objects.filter(pk__in=[c0, c1, c2]).values_list("id", "model_name"))
    assert got == {(m[c0], m[c1], 0), (m[c0], m[c2], 2), (m[c1], m[c2], 1)}


def test_page_csv_access_and_bad_input(make_project, labeler_in, client):
    project = make_project()
    labelers = [labeler_in(project) for _ in range(3)]
    seed_arena(project, labelers, seed=2)
    researcher = labeler_in(project, role="researcher")
    url = f"/projects/{project.slug}/reports/leaderboard/"

    client.force_login(labelers[0])
    assert client.get(url).status_code == 403
    client.force_login(labeler_in(make_project(), role="manager"))
    assert client.get(url).status_code == 404
    client.force_login(researcher)
    resp = client.get(url)
    assert resp.status_code == 200
    html = resp.content.decode()
    assert EVIL not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "robustness:" in html.lower() and 'id="style-table"' not in html
    styled = client.get(url + "?style=on").content.decode()
    assert 'id="style-table"' in styled and "length" in styled
    bad = client.get(url + "?style=maybe")
    assert bad.status_code == 400 and b"style must be on or off" in bad.content

    resp = client.get(url + "leaderboard.csv")
    assert resp.status_code == 200 and resp["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.content.decode())))
    assert [r["rank"] for r in rows] == ["1", "2", "3"]
    assert {r["model"] for r in rows} == {"model-0", EVIL, "'" + FORMULA}  # no live formula
    assert all(
        int(r["games"]) == sum(int(r[k]) for k in ("wins", "ties", "both_bad", "losses")) for r in rows
    )


def test_an_empty_project_says_so(make_project, labeler_in, client):
    project = make_project()
    client.force_login(labeler_in(project, role="manager"))
    resp = client.get(f"/projects/{project.slug}/reports/leaderboard/")
    assert resp.status_code == 200 and b"No votes between two different models yet" in resp.content
    csv_resp = client.get(f"/projects/{project.slug}/reports/leaderboard/leaderboard.csv")
    assert csv_resp.content.decode().strip().startswith("rank,model,rating")
