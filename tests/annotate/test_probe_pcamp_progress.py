"""Probe (labeling campaign): the progress page's counts against the rows in the database."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotate.models import Assignment, AssignmentState
from annotate.selectors import project_progress
from annotate.services.leasing import task_claim_next
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db


def _on_screen(html: str) -> int:
    match = re.search(r"(\d+) on screen now", html)
    assert match, "the progress page shows no 'on screen now' figure"
    return int(match.group(1))


def test_on_screen_now_counts_only_unexpired_leases(make_project, labeler_in, make_user, client):
    """A lease past its expiry that the sweep has not reclaimed yet is nobody's screen: the page
    said '2 on screen now' while one labeler had walked away an hour ago."""
    project = make_project(overlap=1)
    add_tasks(project, prompts=3)
    gone, here = labeler_in(project), labeler_in(project)
    stale = task_claim_next(project=project, labeler=gone)
    task_claim_next(project=project, labeler=here)
    now = timezone.now()
    Assignment.objects.filter(pk=stale.pk).update(
        leased_at=now - timedelta(hours=2), expires_at=now - timedelta(hours=1)
    )
    truly_live = Assignment.objects.filter(
        task__project=project, state=AssignmentState.LIVE, expires_at__gt=timezone.now()
    ).count()
    assert truly_live == 1

    assert project_progress(project=project)["live_leases"] == truly_live
    client.force_login(make_user(is_superuser=True, is_staff=True))
    resp = client.get(reverse("annotate:manage_progress", args=[project.slug]))
    assert resp.status_code == 200
    assert _on_screen(resp.content.decode()) == truly_live
