"""Probe (labeling campaign): the labelers table downloads with its columns in the page's order.

The report is stored as JSON in PostgreSQL (jsonb), which keeps an object's keys sorted by length,
not in the order they were written; the labelers CSV took its header from the first stored row, so
on PostgreSQL it began "flags,skips,alerts,username,..." with the labeler's id in the middle."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from annotate.services.leasing import annotation_submit, task_claim_next
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


def test_labelers_csv_columns_in_report_order(make_project, labeler_in, make_user, client):
    project = make_project(overlap=2)
    add_tasks(project, prompts=2)
    for user in (labeler_in(project, "ann"), labeler_in(project, "bob")):
        for _ in range(2):
            lease = task_claim_next(project=project, labeler=user)
            annotation_submit(assignment_id=lease.pk, labeler=user, choice="left")
    client.force_login(make_user(is_superuser=True, is_staff=True))
    assert client.get(reverse("reports:project", args=[project.slug])).status_code == 200

    resp = client.get(reverse("reports:download", args=[project.slug, "labelers", "csv"]))
    assert resp.status_code == 200
    rows = list(csv.reader(io.StringIO(resp.content.decode())))
    header = rows[0]
    assert header[:4] == ["labeler_id", "username", "annotations", "consensus_agreement"]
    assert header[-3:] == ["flags", "skips", "alerts"]
    assert sorted(r[1] for r in rows[1:]) == ["ann", "bob"]
    assert all(r[2] == "2" for r in rows[1:])
