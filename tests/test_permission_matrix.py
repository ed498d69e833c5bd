"""Every project-scoped page and API route x every role x a project the user is not in.

The routes are discovered from the URL configuration, so a new page is covered the day it is added.
Integer parameters are filled with ids of real objects of the target project (a lease, a membership,
a guideline version, an export, a generation job, a training run), so a 404 means "refused", not
"no such object".
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from annotate.models import Membership, Role
from annotate.services.guidelines import guideline_publish
from annotate.services.leasing import task_claim_next
from generation.models import GenerationJob
from tests.conftest import add_tasks
from training.models import Export, TrainingRun

pytestmark = pytest.mark.django_db

# Pages and API routes a labeler of the project may use; everything else project-scoped is for
# managers and researchers only.
LABELER_ROUTES = re.compile(r"^(projects/<slug:slug>/(label|guidelines)|api/v1/labeling/)")
# Routes that are per-user rather than per-project (the lease id decides), still checked for strangers.
ALLOWED_FOR_ANY_MEMBER = re.compile(r"^api/v1/projects/<slug:slug>/(guidelines/|$)")


def _walk(patterns, prefix=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern)


def _routes():
    for route in _walk(get_resolver().url_patterns):
        if route.startswith(("admin/", "accounts/", "api/schema", "api/docs")):
            continue
        if "slug" in route or "assignment_id" in route or "job_id" in route:
            yield route


def _fill(route: str, values: dict[str, object]) -> str:
    path = route
    if path.startswith("^") or "(?P<" in path:  # a regex route
        for name, value in values.items():
            path = re.sub(rf"\(\?P<{name}>[^)]*\)", str(value), path)
        path = path.replace("^", "").replace("$", "").replace("\\.", ".")
        return "/" + path
    for name, value in values.items():
        path = re.sub(rf"<(?:\w+:)?{name}>", str(value), path)
    assert "<" not in path, f"unfilled parameter in {route}"
    return "/" + path


@pytest.fixture
def world(make_project, make_user, labeler_in):
    target = make_project(name="Target")
    other = make_project(name="Other")
    add_tasks(target, prompts=3)
    add_tasks(other, prompts=1)
    boss = make_user()
    guideline_publish(project=target, actor=boss, body="rules")
    victim = labeler_in(target)
    lease = task_claim_next(project=target, labeler=victim)
    now = timezone.now()
    export = Export.objects.create(project=target, version=1, format="trl", state="done", finished_at=now)
    job = GenerationJob.objects.create(project=target, k=2)
    run = TrainingRun.objects.create(project=target, kind="dpo", export=export, base_model="tiny")
    values = {
        "slug": target.slug,
        "assignment_id": lease.pk,
        "membership_id": Membership.objects.get(project=target, user=victim).pk,
        "version": 1,
        "job_id": job.pk,
        "run_id": run.pk,
        "name": "manifest.json",
        "table": "labelers",
        "fmt": "csv",
    }
    # a user who holds every role, but in the other project only
    stranger = make_user()
    for role in Role.values:
        Membership.objects.create(project=other, user=stranger, role=role)
    lease.expires_at = now + timedelta(hours=1)
    return {"target": target, "values": values, "stranger": stranger, "labeler": labeler_in(target)}


def _request(client, method: str, path: str):
    resp = client.get(path) if method == "GET" else client.post(path, {}, format="json")
    if resp.status_code in (301, 302) and "/accounts/login/" not in resp["Location"]:
        # a plain redirect (e.g. an app's home to its first page) must land on a refusal too
        resp = client.get(resp["Location"])
    return resp


def test_routes_are_discovered():
    routes = list(_routes())
    assert any(r.startswith("projects/") for r in routes)
    assert any(r.startswith("api/v1/") for r in routes)
    assert any(r.startswith(("training/", "generation/", "reports/")) for r in routes)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_strangers_get_403_or_404_everywhere(world, method):
    client = APIClient()
    client.force_login(world["stranger"])
    failures = []
    for route in _routes():
        resp = _request(client, method, _fill(route, world["values"]))
        if resp.status_code not in (403, 404, 405):
            failures.append(f"{method} {route}: {resp.status_code}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_labelers_cannot_reach_manager_or_researcher_routes(world, method):
    client = APIClient()
    client.force_login(world["labeler"])
    failures = []
    checked = 0
    for route in _routes():
        if LABELER_ROUTES.search(route) or ALLOWED_FOR_ANY_MEMBER.search(route):
            continue
        checked += 1
        resp = _request(client, method, _fill(route, world["values"]))
        if resp.status_code not in (403, 404, 405):
            failures.append(f"{method} {route}: {resp.status_code}")
    assert checked > 20
    assert not failures, "\n".join(failures)


def test_anonymous_users_are_sent_to_sign_in(world):
    client = APIClient()
    failures = []
    for route in _routes():
        resp = _request(client, "GET", _fill(route, world["values"]))
        ok = resp.status_code in (401, 403, 405) or (
            resp.status_code == 302 and "/accounts/login/" in resp["Location"]
        )
        if not ok:
            failures.append(f"GET {route}: {resp.status_code}")
    assert not failures, "\n".join(failures)


def test_another_labelers_lease_is_refused(world):
    client = APIClient()
    client.force_login(world["labeler"])  # same project, but the lease belongs to someone else
    lease_id = world["values"]["assignment_id"]
    for path in (
        f"/api/v1/labeling/assignments/{lease_id}/submit",
        f"/api/v1/labeling/assignments/{lease_id}/skip",
        f"/api/v1/labeling/assignments/{lease_id}/undo",
        f"/projects/{world['target'].slug}/label/{lease_id}/submit/",
        f"/projects/{world['target'].slug}/label/{lease_id}/skip/",
        f"/projects/{world['target'].slug}/label/{lease_id}/undo/",
    ):
        resp = client.post(path, {"choice": "left", "reason": "x"}, format="json")
        assert resp.status_code in (403, 404), (path, resp.status_code)
