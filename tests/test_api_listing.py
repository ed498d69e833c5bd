"""The management API's listings and import schema: what a researcher can read back and filter by,
bad paging parameters, and the import operation's documented request bodies."""

from __future__ import annotations

import pytest

from annotate.models import Annotation
from annotate.uploads import RAW_IMPORT_TYPES
from tests.conftest import add_tasks, bearer
from tests.openapi import api_schema, resolve

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(make_project, labeler_in):
    project = make_project(overlap=2)
    tasks = add_tasks(project, prompts=3)
    alice = labeler_in(project, "alice")
    bob = labeler_in(project, "bob")
    researcher = labeler_in(project, "rita", role="researcher")
    for task in tasks:
        Annotation.objects.create(task=task, labeler=alice, choice="a", pre_annotated=task == tasks[0])
    Annotation.objects.create(task=tasks[0], labeler=bob, choice="b")
    return {"project": project, "alice": alice, "bob": bob, "client": bearer(researcher)}


def _url(world, what="annotations"):
    return f"/api/v1/projects/{world['project'].slug}/{what}/"


def test_annotation_rows_say_whether_a_judge_verdict_was_preselected(world):
    rows = world["client"].get(_url(world)).json()["results"]
    assert sorted(r["pre_annotated"] for r in rows) == [False, False, False, True]
    row = resolve(api_schema(), {"$ref": "#/components/schemas/Annotation"})
    assert row["properties"]["pre_annotated"]["type"] == "boolean"
    assert "pre_annotated" in row["required"]


def test_annotations_name_their_labeler_and_filter_by_username(world):
    client = world["client"]
    rows = client.get(_url(world)).json()["results"]
    assert {(r["labeler_id"], r["labeler"]) for r in rows} == {
        (world["alice"].pk, "alice"),
        (world["bob"].pk, "bob"),
    }
    assert client.get(_url(world), {"labeler": "alice"}).json()["count"] == 3
    assert client.get(_url(world), {"labeler": str(world["bob"].pk)}).json()["count"] == 1
    unknown = client.get(_url(world), {"labeler": "nobody"})
    assert unknown.status_code == 400 and unknown.json()["field"] == "labeler"
    assert "nobody" in unknown.json()["detail"]
    row = resolve(api_schema(), {"$ref": "#/components/schemas/Annotation"})
    assert row["properties"]["labeler"]["type"] == "string"
    params = {
        p["name"]: p
        for p in api_schema()["paths"]["/api/v1/projects/{slug}/annotations/"]["get"]["parameters"]
    }
    assert params["labeler"]["schema"]["type"] == "string" and "username" in params["labeler"]["description"]


@pytest.mark.parametrize("what", ["annotations", "tasks", "members"])
@pytest.mark.parametrize(
    "query, field",
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"offset": "-5"}, "offset"),
        ({"offset": "x"}, "offset"),
    ],
)
def test_bad_paging_parameters_answer_400_naming_them(world, what, query, field, labeler_in):
    client = world["client"]
    if what == "members":
        manager = labeler_in(world["project"], "mia", role="manager")
        client = bearer(manager)
    resp = client.get(_url(world, what), query)
    assert resp.status_code == 400, resp.content
    body = resp.json()
    assert body["error"] == "invalid" and field in body["details"], body
    assert field in body["detail"]


def test_good_paging_parameters_still_work(world):
    client = world["client"]
    page = client.get(_url(world), {"limit": "2", "offset": "1"}).json()
    assert page["count"] == 4 and len(page["results"]) == 2
    assert len(client.get(_url(world), {"limit": "5000"}).json()["results"]) == 4  # capped, not refused
    assert client.get(_url(world), {"limit": "", "offset": ""}).status_code == 200


def test_import_schema_offers_a_file_picker_and_the_raw_body():
    op = api_schema()["paths"]["/api/v1/projects/{slug}/imports/"]["post"]
    content = op["requestBody"]["content"]
    assert set(content) == {"multipart/form-data", *RAW_IMPORT_TYPES}
    assert {"application/x-ndjson", "application/gzip"} <= set(RAW_IMPORT_TYPES)
    form = resolve(api_schema(), content["multipart/form-data"]["schema"])
    assert form["properties"]["file"] == {
        "type": "string",
        "format": "binary",
        "description": form["properties"]["file"]["description"],
    }
    assert "file" in form["required"]
    for raw in RAW_IMPORT_TYPES:
        assert content[raw]["schema"] == {"type": "string", "format": "binary"}
    query = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
    assert {"format", "skip_invalid", "filename"} <= query
    assert "415" in op["responses"]


def test_an_urlencoded_or_json_import_answers_415(world, labeler_in):
    client = bearer(labeler_in(world["project"], "mo", role="manager"))
    url = _url(world, "imports")
    resp = client.post(url, "a=1", content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 415 and resp.json()["error"] == "unsupported_media_type"
    assert client.post(url, {"file": "x"}, format="json").status_code == 415


def test_an_expired_lease_is_no_claim_in_the_tasks_list(world, labeler_in):
    """A task whose only lease expired was listed as claimed and not open until the next claim or
    the minute sweep reclaimed it. The list reads leases as they are now."""
    from datetime import timedelta

    from django.utils import timezone

    from annotate.models import Assignment, Task
    from annotate.services.leasing import task_claim_next

    project, client = world["project"], world["client"]
    lab = labeler_in(project, "late")
    lease = task_claim_next(project=project, labeler=lab)
    task = Task.objects.get(pk=lease.task_id)
    claims = task.claims
    url = f"/api/v1/projects/{project.slug}/tasks/"
    row = next(r for r in client.get(url).json()["results"] if r["id"] == task.pk)
    assert row["claims"] == claims
    Task.objects.filter(pk=task.pk).update(target_labels=claims)  # the lease filled its last slot
    now = timezone.now()
    Assignment.objects.filter(pk=lease.pk).update(
        leased_at=now - timedelta(minutes=20), expires_at=now - timedelta(seconds=1)
    )
    row = next(r for r in client.get(url).json()["results"] if r["id"] == task.pk)
    assert row["claims"] == claims - 1
    open_ids = {r["id"] for r in client.get(url + "?open=true&limit=1000").json()["results"]}
    full_ids = {r["id"] for r in client.get(url + "?open=false&limit=1000").json()["results"]}
    assert task.pk in open_ids and task.pk not in full_ids


@pytest.mark.parametrize("value", ["\u00b2", "\u0663", "9" * 30])
def test_an_odd_number_as_labeler_is_a_name_not_a_500(world, value):
    """'²'.isdigit() is true but int('²') fails; a 30-digit id overflowed: the filter answered 500.
    Neither names anybody of the project: a 400 naming it."""
    resp = world["client"].get(_url(world), {"labeler": value})
    assert resp.status_code == 400 and resp.json()["field"] == "labeler"


def test_a_raw_import_names_its_format_and_filename_in_the_query(world, labeler_in):
    """``?format=`` was taken by DRF's format override (a 404), and a NUL in ``filename`` failed the
    audit write on PostgreSQL (a 500)."""
    from annotate.models import AuditEvent

    manager = labeler_in(world["project"], "mgr", role="manager")
    client = bearer(manager)
    line = b'{"prompt": "Hi", "candidates": ["a", "b"]}\n'
    url = f"/api/v1/projects/{world['project'].slug}/imports/"
    resp = client.post(url + "?format=jsonl&filename=mine.jsonl", line, content_type="application/x-ndjson")
    assert resp.status_code == 201, resp.content
    assert AuditEvent.objects.filter(action="prompts.import", details__filename="mine.jsonl").exists()
    resp = client.post(url + "?filename=a%00b", line, content_type="application/x-ndjson")
    assert resp.status_code == 400 and resp.json()["field"] == "filename", resp.content
