"""REST API: token auth, the permission matrix (every endpoint x every role x a foreign project),
imports, filters, exports, the error format and the OpenAPI schema."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from datetime import timedelta
from unittest import mock

import pytest
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from annotate.models import Annotation, ApiToken, AuditEvent
from annotate.services.guidelines import guideline_publish
from annotate.services.tokens import token_authenticate, token_create, token_revoke
from tests.conftest import add_tasks, bearer
from training.models import Export, ExportState
from training.services.exports import export_create, export_run

pytestmark = pytest.mark.django_db

GOOD_JSONL = b'{"id": "n1", "prompt": "Hello?", "candidates": ["Hi", "Hey"]}\n'
BAD_JSONL = b'{"id": "n1", "prompt": "Hello?", "candidates": ["Hi", "Hey"]}\nnot json\n{"id": 3}\n'


@pytest.fixture
def world(make_project, labeler_in, make_user):
    project = make_project(overlap=2, dimensions=["Harmless"])
    guideline_publish(project=project, actor=None, body="Be kind.")
    tasks = add_tasks(project, prompts=3)
    users = {role: labeler_in(project, role=role) for role in ("labeler", "manager", "researcher")}
    for task in tasks:
        Annotation.objects.create(task=task, labeler=users["labeler"], choice="a")
    export = export_run(export_id=export_create(project=project, format="trl", enqueue=False).pk)
    other = make_project()
    outsider = labeler_in(other, role="researcher")
    return {
        "project": project,
        "other": other,
        "users": users,
        "outsider": outsider,
        "tasks": tasks,
        "export": export,
    }


# --- tokens -------------------------------------------------------------------------------------------


def test_token_is_shown_once_stored_as_digest_and_authenticates(make_user):
    user = make_user()
    token, secret = token_create(user=user, name="laptop")
    assert secret.startswith("ph_") and token.prefix == secret[:12]
    assert secret not in {token.digest, token.prefix} and len(token.digest) == 64
    assert token_authenticate(secret=secret) == token
    assert token_authenticate(secret=secret + "x") is None
    assert AuditEvent.objects.filter(action="api_token.create", target_id=str(token.pk)).exists()


def test_last_used_is_written_at_most_once_a_minute(make_user):
    token, secret = token_create(user=make_user(), name="t")
    now = timezone.now()
    token_authenticate(secret=secret, now=now)
    token_authenticate(secret=secret, now=now + timedelta(seconds=30))
    token.refresh_from_db()
    assert token.last_used_at == now
    token_authenticate(secret=secret, now=now + timedelta(seconds=61))
    token.refresh_from_db()
    assert token.last_used_at == now + timedelta(seconds=61)


def test_revoked_expired_and_inactive_tokens_are_refused(make_user, world):
    user = world["users"]["researcher"]
    client = bearer(user)
    assert client.get("/api/v1/projects/").status_code == 200
    token = ApiToken.objects.filter(user=user).latest("created_at")
    token_revoke(token=token)
    resp = client.get("/api/v1/projects/")
    assert resp.status_code == 401 and "revoked" in resp.json()["detail"]
    expired, secret = token_create(user=user, name="old", expires_at=timezone.now() + timedelta(seconds=1))
    ApiToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert APIClient().get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401
    _, secret = token_create(user=user, name="mine")
    user.is_active = False
    user.save()
    assert APIClient().get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 401
    assert APIClient().get("/api/v1/projects/", HTTP_AUTHORIZATION="Bearer").status_code == 401


def test_scoped_token_reaches_only_its_projects(world, make_project, labeler_in):
    user = world["users"]["researcher"]
    second = make_project()
    labeler_in(second)  # someone else
    from annotate.services.projects import membership_add

    membership_add(project=second, user=user, role="researcher")
    scoped = bearer(user, projects=[second])
    assert [p["slug"] for p in scoped.get("/api/v1/projects/").json()["results"]] == [second.slug]
    assert scoped.get(f"/api/v1/projects/{world['project'].slug}/").status_code == 404
    assert scoped.get(f"/api/v1/projects/{world['project'].slug}/exports/").status_code == 404
    assert scoped.get(f"/api/v1/projects/{second.slug}/exports/").status_code == 200
    unscoped = bearer(user)
    assert {p["slug"] for p in unscoped.get("/api/v1/projects/").json()["results"]} == {
        world["project"].slug,
        second.slug,
    }


def test_api_token_command_creates_lists_and_revokes(world):
    out = io.StringIO()
    call_command("api_token", "create", "--user", world["users"]["researcher"].username, "--name", "cli",
                 "--project", world["project"].slug, stdout=out, stderr=io.StringIO())  # fmt: skip
    secret = out.getvalue().strip()
    token = token_authenticate(secret=secret)
    assert token is not None and list(token.projects.all()) == [world["project"]]
    listing = io.StringIO()
    call_command("api_token", "list", stdout=listing)
    assert "cli" in listing.getvalue() and world["project"].slug in listing.getvalue()
    call_command("api_token", "revoke", "--id", str(token.pk), stdout=io.StringIO())
    assert token_authenticate(secret=secret) is None


# --- permission matrix ----------------------------------------------------------------------------------

VIEW, IMPORT, RESEARCH = "view", "import", "research"
ALLOWED = {
    VIEW: {"labeler", "manager", "researcher"},
    IMPORT: {"manager", "researcher"},
    RESEARCH: {"researcher"},  # managers run the project; researchers export, generate, train
}


def endpoints(world):
    s, v = world["project"].slug, world["export"].version
    return [
        ("get", f"/api/v1/projects/{s}/", VIEW, None),
        ("get", f"/api/v1/projects/{s}/guidelines/", VIEW, None),
        ("get", f"/api/v1/projects/{s}/guidelines/1/", VIEW, None),
        ("post", f"/api/v1/projects/{s}/imports/", IMPORT, "import"),
        ("get", f"/api/v1/projects/{s}/tasks/", RESEARCH, None),
        ("get", f"/api/v1/projects/{s}/annotations/", RESEARCH, None),
        ("get", f"/api/v1/projects/{s}/exports/", RESEARCH, None),
        ("post", f"/api/v1/projects/{s}/exports/", RESEARCH, {"format": "trl"}),
        ("get", f"/api/v1/projects/{s}/exports/{v}/", RESEARCH, None),
        ("get", f"/api/v1/projects/{s}/exports/{v}/download/", RESEARCH, None),
        ("get", f"/api/v1/projects/{s}/exports/{v}/files/train.jsonl", RESEARCH, None),
    ]


def _call(client, method, url, body):
    if body == "import":
        upload = io.BytesIO(
            GOOD_JSONL.replace(b"n1", f"n{Export.objects.count()}{Annotation.objects.count()}".encode())
        )
        upload.name = "prompts.jsonl"
        return client.post(url, {"file": upload, "skip_invalid": "true"}, format="multipart")
    if method == "post":
        return client.post(url, body, format="json")
    return client.get(url)


@pytest.mark.parametrize("role", ["labeler", "manager", "researcher", "outsider", "superuser", "anonymous"])
def test_permission_matrix(world, role, make_user):
    if role == "anonymous":
        client = APIClient()
    elif role == "superuser":
        client = bearer(make_user(is_superuser=True, is_staff=True))
    else:
        client = bearer(world["outsider"] if role == "outsider" else world["users"][role])
    with mock.patch("core.outbox.send_task"):
        for method, url, capability, body in endpoints(world):
            resp = _call(client, method, url, body)
            if role == "anonymous":
                expected = {401, 403}
            elif role == "outsider":
                expected = {404}
            elif role == "superuser" or role in ALLOWED[capability]:
                expected = {200, 201}
            else:
                expected = {403}
            assert resp.status_code in expected, (
                role,
                method,
                url,
                resp.status_code,
                getattr(resp, "data", None),
            )
            if resp.status_code in (403, 404) and role != "anonymous":
                assert set(resp.json()) >= {"error", "detail"}


def _api_routes():
    """Every route under /api/v1/, with its kwargs names (included modules too)."""

    def walk(patterns, prefix=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                yield prefix + str(p.pattern), p

    for route, pattern in walk(get_resolver().url_patterns):
        if route.startswith("api/v1/"):
            yield route, pattern


def test_every_project_route_hides_foreign_projects(world):
    """Any route taking a project slug, including the generation and training-run APIs when those
    modules are present: a user outside the project gets 403/404 for every method."""
    import re

    client = bearer(world["outsider"])
    routes = [(r, p) for r, p in _api_routes() if "<slug:slug>" in r or "<str:slug>" in r]
    assert len(routes) >= 10
    for route, _ in routes:
        url = "/" + re.sub(r"<(?:slug|str):slug>", world["project"].slug, route)
        url = re.sub(r"<int:\w+>", "1", url)
        url = re.sub(r"<(?:str|slug|uuid|path):\w+>", "x", url)
        for method in ("get", "post", "put", "patch", "delete"):
            resp = getattr(client, method)(url, {}, format="json")
            # 405: the route has no such method (answered before any project lookup, reveals nothing)
            assert resp.status_code in (403, 404, 405), (method, url, resp.status_code)


# --- imports ---------------------------------------------------------------------------------------------


def test_import_reports_bad_lines_with_400_and_writes_nothing(world):
    client = bearer(world["users"]["manager"])
    url = f"/api/v1/projects/{world['project'].slug}/imports/"
    upload = io.BytesIO(BAD_JSONL)
    upload.name = "bad.jsonl"
    resp = client.post(url, {"file": upload}, format="multipart")
    assert resp.status_code == 400
    body = resp.json()
    assert body["error"] == "import_failed"
    assert [e["line"] for e in body["details"]["errors"]] == [2, 3]
    assert not world["project"].prompts.filter(external_id="n1").exists()
    gz = io.BytesIO(gzip.compress(GOOD_JSONL))
    gz.name = "good.jsonl.gz"
    resp = client.post(url, {"file": gz}, format="multipart")
    assert resp.status_code == 201 and resp.json()["prompts"] == 1 and resp.json()["tasks"] == 1
    assert client.post(url, {}, format="multipart").status_code == 400


# --- tasks and annotations ------------------------------------------------------------------------------


def test_annotations_filter_by_task_labeler_since_and_paginate(world):
    client = bearer(world["users"]["researcher"])
    url = f"/api/v1/projects/{world['project'].slug}/annotations/"
    everything = client.get(url).json()
    assert everything["count"] == 3 and everything["results"][0]["choice"] == "a"
    task = world["tasks"][0]
    assert client.get(url, {"task": task.pk}).json()["count"] == 1
    assert client.get(url, {"labeler": world["users"]["labeler"].pk}).json()["count"] == 3
    assert client.get(url, {"labeler": world["users"]["manager"].pk}).json()["count"] == 0
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    assert client.get(url, {"since": future}).json()["count"] == 0
    assert client.get(url, {"since": "yesterday"}).status_code == 400
    page = client.get(url, {"limit": 2, "offset": 1}).json()
    assert len(page["results"]) == 2 and page["previous"] is not None
    tasks = client.get(f"/api/v1/projects/{world['project'].slug}/tasks/", {"is_gold": "false"}).json()
    assert tasks["count"] == 3 and len(tasks["results"][0]["candidate_ids"]) == 2
    assert tasks["results"][0]["annotations"] == 1


def test_annotations_are_read_only(world):
    client = bearer(world["users"]["researcher"])
    url = f"/api/v1/projects/{world['project'].slug}/annotations/"
    assert client.post(url, {"choice": "a"}, format="json").status_code == 405
    assert client.delete(url).status_code == 405


# --- exports ---------------------------------------------------------------------------------------------


def test_export_create_run_retrieve_download(world, django_capture_on_commit_callbacks):
    client = bearer(world["users"]["researcher"])
    url = f"/api/v1/projects/{world['project'].slug}/exports/"
    patch = mock.patch("core.outbox.send_task")
    with patch as delay, django_capture_on_commit_callbacks(execute=True):
        resp = client.post(
            url, {"format": "openai", "file_type": "parquet", "options": {"test_size": 0.3}}, format="json"
        )
    assert resp.status_code == 201, resp.json()
    created = resp.json()
    assert created["state"] == "queued" and created["version"] == 2 and created["files"] == []
    delay.assert_called_once()
    export = Export.objects.get(project=world["project"], version=2)
    assert client.get(f"{url}2/download/").status_code == 409
    export_run(export_id=export.pk)
    detail = client.get(f"{url}2/").json()
    assert detail["state"] == ExportState.DONE and "manifest.json" in detail["files"]
    assert detail["content_hash"] == detail["manifest"]["content_hash"]
    resp = client.get(f"{url}2/download/")
    names = zipfile.ZipFile(io.BytesIO(b"".join(resp.streaming_content))).namelist()
    assert any(n.endswith("train.parquet") for n in names)
    manifest = json.loads(b"".join(client.get(f"{url}2/files/manifest.json").streaming_content))
    assert manifest["format"] == "openai"
    assert client.get(f"{url}2/files/..%2Fv1").status_code == 404
    assert client.get(f"{url}9/").status_code == 404
    listing = client.get(url).json()
    assert [e["version"] for e in listing["results"]] == [2, 1]


def test_export_bad_option_is_a_400_naming_it(world):
    client = bearer(world["users"]["researcher"])
    url = f"/api/v1/projects/{world['project'].slug}/exports/"
    resp = client.post(url, {"format": "trl", "options": {"pairing": "sideways"}}, format="json")
    assert resp.status_code == 400 and resp.json()["field"] == "pairing"
    resp = client.post(url, {"format": "yaml"}, format="json")
    assert resp.status_code == 400 and resp.json()["field"] == "format"


def test_session_auth_still_works_for_the_browser(world, client):
    client.force_login(world["users"]["manager"])
    assert client.get("/api/v1/projects/").status_code == 200


# --- schema -----------------------------------------------------------------------------------------------


def test_openapi_schema_is_served_and_lists_every_route(client):
    resp = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert resp.status_code == 200
    schema = json.loads(resp.content)
    paths = schema["paths"]
    for expected in (
        "/api/v1/projects/",
        "/api/v1/projects/{slug}/imports/",
        "/api/v1/projects/{slug}/exports/{version}/download/",
    ):
        assert expected in paths
    assert "bearerAuth" in schema["components"]["securitySchemes"]
    assert client.get("/api/docs/").status_code == 200
