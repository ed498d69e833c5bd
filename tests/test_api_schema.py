"""The API documentation a person can read (issue 14): the OpenAPI document generates without a
warning, every operation has a summary, a description and a tag of its area, every body is typed
(no bare objects), every error answer uses the core error schema, and no developer docstring
leaks into it."""

from __future__ import annotations

import inspect
import json

import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework import serializers

from tests.openapi import api_schema, operations, resolve, shape_problems

# Phrases that only a developer's docstring or reST would put in the document.
DOCSTRING_PHRASES = (
    "Locking contract",
    "Returns ``",
    "``",
    ":func:",
    ":class:",
    ":data:",
    "ProjectPermission",
    "An API view under",
    "self.access",
    "for the OpenAPI document",
    "Documents ``",
    "(documentation:",
)


def _descriptions(node, where: str = ""):
    """Every (location, text) of a description, summary or title in the document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("description", "summary", "title") and isinstance(value, str):
                yield f"{where}.{key}", value
            else:
                yield from _descriptions(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _descriptions(value, f"{where}[{i}]")


def schema_problems(schema: dict) -> list[str]:
    """Everything that keeps ``schema`` from being documentation a person can read."""
    tags = {t["name"] for t in schema.get("tags", [])}
    problems = []
    for method, path, op in operations(schema):
        name = f"{method} {path}"
        summary = (op.get("summary") or "").strip()
        if not summary:
            problems.append(f"{name}: no summary")
        elif len(summary) > 60 or summary.endswith("."):
            problems.append(f"{name}: the summary should be a short title: {summary!r}")
        if len((op.get("description") or "").strip()) < 20:
            problems.append(f"{name}: no description")
        if not op.get("tags") or not set(op["tags"]) <= tags:
            problems.append(f"{name}: tags {op.get('tags')} are not the documented areas {sorted(tags)}")
        body = op.get("requestBody", {}).get("content", {})
        for media, spec in body.items():
            problems += [f"{name} request ({media}): {p}" for p in shape_problems(schema, spec["schema"])]
        for status, response in op.get("responses", {}).items():
            for media, spec in (response.get("content") or {}).items():
                problems += [
                    f"{name} {status} ({media}): {p}" for p in shape_problems(schema, spec["schema"])
                ]
                if status.startswith("4") and spec["schema"] != {"$ref": "#/components/schemas/Error"}:
                    problems.append(f"{name} {status}: not the error schema")
        if not any(s.startswith("2") for s in op.get("responses", {})):
            problems.append(f"{name}: no success response")
        if not any(s.startswith("4") for s in op.get("responses", {})):
            problems.append(f"{name}: no error responses")
    for where, text in _descriptions(schema):
        problems += [
            f"{where}: docstring phrase {phrase!r}" for phrase in DOCSTRING_PHRASES if phrase in text
        ]
    return problems


def test_the_schema_generates_and_validates_without_a_warning(tmp_path):
    """``manage.py spectacular --validate --fail-on-warn``: any warning (an unresolvable type, an
    enum or operation id collision, an invalid document) fails."""
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert "/api/v1/projects/{slug}/members/" in out.read_text()


def test_every_operation_is_documented_for_people():
    problems = schema_problems(api_schema())
    assert not problems, "\n".join(problems)


def test_the_checks_catch_what_they_are_for():
    """The checker itself: an operation without summary, with a bare object response, a leaked
    docstring, a stray tag or an error answer outside the error schema is reported."""
    bad = {
        "tags": [{"name": "Projects"}],
        "components": {"schemas": {"Error": {"type": "object", "properties": {"error": {"type": "string"}}}}},
        "paths": {
            "/x/": {
                "get": {
                    "tags": ["v1"],
                    "description": "Returns ``thing``: the Locking contract holds.",
                    "responses": {
                        "200": {"content": {"application/json": {"schema": {"type": "object"}}}},
                        "404": {"content": {"application/json": {"schema": {"type": "string"}}}},
                    },
                }
            }
        },
    }
    text = "\n".join(schema_problems(bad))
    for expected in ("no summary", "tags ['v1']", "untyped body", "docstring phrase 'Locking contract'",
                     "docstring phrase 'Returns ``'", "404: not the error schema"):  # fmt: skip
        assert expected in text, (expected, text)


def _view_classes():
    def walk(patterns):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns)
            elif isinstance(p, URLPattern) and hasattr(p.callback, "view_class"):
                yield p.callback.view_class

    return {
        cls
        for cls in walk(get_resolver().url_patterns)
        if cls.__module__.endswith(("apis", "apis_runs", "apis_labeling", "apis_members"))
    }


def test_no_docstring_of_an_api_view_or_its_bases_reaches_the_document():
    """Docstrings are for developers (locking contracts, reST, names of internals): none of an API
    view's, its methods', its base classes' or its module's serializers' docstrings may appear in
    the published document."""
    text = json.dumps(api_schema())
    classes = _view_classes()
    assert len(classes) > 20
    leaks = []
    for cls in classes:
        for owner in cls.__mro__:
            if owner.__module__.startswith(("rest_framework", "django")):
                continue
            docs = [owner.__doc__] + [
                getattr(owner, m).__doc__ for m in ("get", "post", "patch", "delete") if m in vars(owner)
            ]
            docs += [
                v.__doc__
                for v in vars(inspect.getmodule(owner)).values()
                if inspect.isclass(v)
                and issubclass(v, serializers.BaseSerializer)
                and v.__module__ == owner.__module__
            ]
            for doc in filter(None, docs):
                first = inspect.cleandoc(doc).splitlines()[0]
                if len(first) > 15 and json.dumps(first)[1:-1] in text:
                    leaks.append(f"{owner.__name__}: {first}")
    assert not leaks, leaks


def test_tags_follow_the_areas_in_settings_and_all_are_used():
    schema = api_schema()
    used = {tag for _, _, op in operations(schema) for tag in op["tags"]}
    assert [t["name"] for t in schema["tags"]] == [t["name"] for t in settings.SPECTACULAR_SETTINGS["TAGS"]]
    assert used == {t["name"] for t in schema["tags"]}


def test_training_runs_and_generation_are_typed_not_bare_objects():
    """The reported defect: runs were ``object`` (additionalProperties: {}) in the document."""
    schema = api_schema()
    run = resolve(
        schema,
        schema["paths"]["/api/v1/projects/{slug}/runs/{run_id}/"]["get"]["responses"]["200"]["content"][
            "application/json"
        ]["schema"],
    )
    assert {"state", "kind", "metrics", "export", "registered_endpoint"} <= set(run["properties"])
    job = resolve(
        schema,
        schema["paths"]["/api/v1/generation/jobs/{job_id}/"]["get"]["responses"]["200"]["content"][
            "application/json"
        ]["schema"],
    )
    assert {"state", "percent", "failures", "endpoints"} <= set(job["properties"])


@pytest.mark.django_db
def test_the_served_document_is_the_checked_one(client):
    resp = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert resp.status_code == 200
    served = json.loads(resp.content)
    assert served["paths"].keys() == api_schema()["paths"].keys()
    assert "Bearer" in served["info"]["description"]


# --- real answers have the documented shapes ------------------------------------------------------


@pytest.fixture
def lab(make_project, labeler_in):
    from annotate.models import Annotation
    from annotate.services.guidelines import guideline_publish
    from tests.conftest import add_tasks

    project = make_project(dimensions=["Harmless"])
    tasks = add_tasks(project, prompts=3)
    people = {role: labeler_in(project, role=role) for role in ("labeler", "manager", "researcher")}
    Annotation.objects.create(task=tasks[0], labeler=people["researcher"], choice="a")
    guideline_publish(project=project, actor=people["manager"], body="Be kind.")
    return {"project": project, "slug": project.slug, **people}


def _client(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_labeling_answers_have_the_documented_shapes(lab):
    from tests.openapi import assert_documented

    client = _client(lab["labeler"])
    slug = lab["slug"]
    claimed = client.post(f"/api/v1/labeling/{slug}/next", {}, format="json")
    assert_documented(claimed, "POST", "/api/v1/labeling/{slug}/next")
    assert claimed.json()["guideline_to_acknowledge"] == 1
    ack = client.post(f"/api/v1/labeling/{slug}/acknowledge-guidelines")
    assert_documented(ack, "POST", "/api/v1/labeling/{slug}/acknowledge-guidelines")
    lease = claimed.json()["assignment_id"]
    base = "/api/v1/labeling/assignments/{assignment_id}/"
    submitted = client.post(f"/api/v1/labeling/assignments/{lease}/submit", {"choice": "left"}, format="json")
    assert submitted.status_code == 201, submitted.content
    assert_documented(submitted, "POST", base + "submit")
    undone = client.post(f"/api/v1/labeling/assignments/{lease}/undo")
    assert_documented(undone, "POST", base + "undo")
    skipped = client.post(f"/api/v1/labeling/assignments/{lease}/skip", {"reason": "unsure"}, format="json")
    assert skipped.json()["state"] == "skipped"
    assert_documented(skipped, "POST", base + "skip")
    late = client.post(f"/api/v1/labeling/assignments/{lease}/submit", {"choice": "left"}, format="json")
    assert late.status_code == 409
    assert_documented(late, "POST", base + "submit")
    for _ in range(5):  # label the rest, then nothing is left
        last = client.post(f"/api/v1/labeling/{slug}/next", {}, format="json")
        if last.status_code != 200:
            break
        url = f"/api/v1/labeling/assignments/{last.json()['assignment_id']}/submit"
        assert client.post(url, {"choice": "right"}, format="json").status_code == 201
    assert last.status_code == 204
    assert_documented(last, "POST", "/api/v1/labeling/{slug}/next")


@pytest.mark.django_db
def test_research_answers_have_the_documented_shapes(lab):
    from generation.models import GenerationJob
    from generation.services import endpoint_create, job_create
    from tests.openapi import assert_documented
    from training.models import MetricPoint, TrainingRun
    from training.services.exports import export_create, export_run

    project, slug = lab["project"], lab["slug"]
    client = _client(lab["researcher"])
    for path in ("", "tasks/", "annotations/", "guidelines/", "guidelines/1/"):
        resp = client.get(f"/api/v1/projects/{slug}/{path}")
        assert resp.status_code == 200, (path, resp.content)
        assert_documented(resp, "GET", "/api/v1/projects/{slug}/" + path.replace("/1/", "/{version}/"))
    assert_documented(client.get("/api/v1/projects/"), "GET", "/api/v1/projects/")

    export = export_run(export_id=export_create(project=project, format="trl", enqueue=False).pk)
    assert_documented(
        client.get(f"/api/v1/projects/{slug}/exports/"), "GET", "/api/v1/projects/{slug}/exports/"
    )
    detail = client.get(f"/api/v1/projects/{slug}/exports/{export.version}/")
    assert_documented(detail, "GET", "/api/v1/projects/{slug}/exports/{version}/")

    endpoint = endpoint_create(name="tiny", backend="transformers", model="tiny-model", project=project)
    endpoints = client.get(f"/api/v1/projects/{slug}/generation/endpoints/")
    assert endpoints.json()["count"] == 1
    assert_documented(endpoints, "GET", "/api/v1/projects/{slug}/generation/endpoints/")
    job = job_create(project=project, endpoints=[endpoint], enqueue=False)
    assert isinstance(job, GenerationJob)
    jobs = client.get(f"/api/v1/projects/{slug}/generation/jobs/")
    assert_documented(jobs, "GET", "/api/v1/projects/{slug}/generation/jobs/")
    assert_documented(
        client.get(f"/api/v1/generation/jobs/{job.pk}/"), "GET", "/api/v1/generation/jobs/{job_id}/"
    )
    cancelled = client.post(f"/api/v1/generation/jobs/{job.pk}/cancel/")
    assert cancelled.json()["state"] == "cancelled"
    assert_documented(cancelled, "POST", "/api/v1/generation/jobs/{job_id}/cancel/")

    run = TrainingRun.objects.create(project=project, kind="dpo", export=export, base_model="tiny")
    MetricPoint.objects.create(run=run, step=1, values={"loss": 0.5})
    runs = client.get(f"/api/v1/projects/{slug}/runs/")
    assert runs.json()["results"][0]["export"] == export.version
    assert_documented(runs, "GET", "/api/v1/projects/{slug}/runs/")
    status = client.get(f"/api/v1/projects/{slug}/runs/{run.pk}/?points=1")
    assert status.json()["points"][0]["loss"] == 0.5
    assert_documented(status, "GET", "/api/v1/projects/{slug}/runs/{run_id}/")
    cancelled = client.post(f"/api/v1/projects/{slug}/runs/{run.pk}/cancel/")
    assert_documented(cancelled, "POST", "/api/v1/projects/{slug}/runs/{run_id}/cancel/")
    refused = _client(lab["labeler"]).get(f"/api/v1/projects/{slug}/runs/")
    assert refused.status_code == 403
    assert_documented(refused, "GET", "/api/v1/projects/{slug}/runs/")
