"""The agreement report's model leaderboard gives models with the same rating the same rank, on
the page and in the CSV/JSON download.

Before: the rank was the row's position (``forloop.counter`` on the page, ``i + 1`` in the
download): two models that only ever tied, both at 1000 Elo with the same interval, were listed as
ranks 1 and 2, an order made by model name, not by the votes.
Now: each row carries ``rank`` = 1 + the number of models rated above it (equal within half the
0.1 Elo shown), and the page and the downloads show it; reports stored before keep their positions.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.urls import reverse

from annotate.models import Annotation, Task
from annotate.services import reports
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


def _tied_project(make_project, labeler_in):
    project = make_project()
    users = [labeler_in(project) for _ in range(2)]
    add_tasks(project, prompts=4)
    for task in Task.objects.filter(project=project):
        for user in users:
            Annotation.objects.create(task=task, labeler=user, choice="tie")
    return project


def test_tied_models_share_the_rank(make_project, labeler_in, make_user, client):
    project = _tied_project(make_project, labeler_in)
    snap = reports.report_compute_now(project=project, actor=None)
    rows = snap.data["leaderboard"]["rows"]
    assert len(rows) == 2 and rows[0]["elo"] == pytest.approx(rows[1]["elo"])
    assert [r["rank"] for r in rows] == [1, 1]

    client.force_login(make_user(is_superuser=True, is_staff=True))
    resp = client.get(reverse("reports:download", args=[project.slug, "leaderboard", "csv"]))
    got = list(csv.DictReader(io.StringIO(resp.content.decode())))
    assert [r["rank"] for r in got] == ["1", "1"]
    resp = client.get(reverse("reports:download", args=[project.slug, "leaderboard", "json"]))
    body = json.loads(resp.content)
    body_rows = body["rows"] if isinstance(body, dict) else body
    assert [r["rank"] for r in body_rows] == [1, 1]
    html = client.get(reverse("reports:project", args=[project.slug])).content.decode()
    assert '<td class="num">1</td><th scope="row">model-0</th>' in html
    assert '<td class="num">1</td><th scope="row">model-1</th>' in html


def test_distinct_ratings_keep_distinct_ranks():
    data = {"leaderboard": {"rows": [{"model": "x", "elo": 1100.0}, {"model": "y", "elo": 900.0}]}}
    _, rows = reports.report_table(data, "leaderboard")
    assert [r["rank"] for r in rows] == [1, 2]
