"""Registering a trained policy through the API (defect 9): asking again answers 200 with the
endpoint it already has (never a second 201), a different name is refused instead of silently
ignored, and a cancelled or failed run is refused for what it is, not as "not finished"."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from generation.models import ModelEndpoint
from tests.training.conftest import make_run
from training.models import RunState

pytestmark = pytest.mark.django_db


def _policy(project, state=RunState.DONE):
    out = Path(settings.PREFHUB_DATA_DIR) / "models" / f"register-defects-{state}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text("{}")
    return make_run(project, kind="dpo", state=state, output_path=str(out))


def _register(client, project, run, body):
    return client.post(
        f"/api/v1/projects/{project.slug}/runs/{run.pk}/register/", body, content_type="application/json"
    )


def test_registering_again_is_200_with_the_existing_endpoint(client, project, researcher):
    run = _policy(project)
    client.force_login(researcher)
    first = _register(client, project, run, {"name": "my-policy"})
    assert first.status_code == 201, first.content
    assert first.json()["endpoint"] == "my-policy" and first.json()["created"] is True
    again = _register(client, project, run, {"name": "my-policy"})
    assert again.status_code == 200, (again.status_code, again.content)
    assert again.json()["endpoint"] == "my-policy" and again.json()["created"] is False
    assert "already registered" in again.json()["note"]
    unnamed = _register(client, project, run, {})
    assert unnamed.status_code == 200 and unnamed.json()["endpoint"] == "my-policy"
    assert ModelEndpoint.objects.filter(model=run.output_path).count() == 1


def test_registering_again_under_another_name_is_a_409_naming_the_endpoint(client, project, researcher):
    run = _policy(project)
    client.force_login(researcher)
    assert _register(client, project, run, {"name": "old-name"}).status_code == 201
    resp = _register(client, project, run, {"name": "new-name"})
    assert resp.status_code == 409, (resp.status_code, resp.content)
    detail = resp.json()["detail"]
    assert "old-name" in detail and "new-name" in detail
    assert not ModelEndpoint.objects.filter(name="new-name").exists()


@pytest.mark.parametrize("state, word", [(RunState.CANCELLED, "cancelled"), (RunState.FAILED, "failed")])
def test_a_cancelled_or_failed_run_is_refused_for_what_it_is(client, project, researcher, state, word):
    run = _policy(project, state=state)
    client.force_login(researcher)
    resp = _register(client, project, run, {"name": "x"})
    assert resp.status_code == 409
    detail = resp.json()["detail"]
    assert word in detail and "no model" in detail, detail
    assert "not finished" not in detail
    assert not ModelEndpoint.objects.filter(name="x").exists()


def test_a_running_run_is_still_not_finished(client, project, researcher):
    run = _policy(project, state=RunState.RUNNING)
    client.force_login(researcher)
    resp = _register(client, project, run, {})
    assert resp.status_code == 409 and "not finished" in resp.json()["detail"]


def test_the_answers_are_documented(client, project, researcher):
    from tests.openapi import api_schema, assert_documented

    op = api_schema()["paths"]["/api/v1/projects/{slug}/runs/{run_id}/register/"]["post"]
    assert {"200", "201", "409"} <= set(op["responses"])
    assert "200" in op["description"] and "409" in op["description"]
    run = _policy(project)
    client.force_login(researcher)
    path = "/api/v1/projects/{slug}/runs/{run_id}/register/"
    assert_documented(_register(client, project, run, {}), "POST", path)
    assert_documented(_register(client, project, run, {}), "POST", path)
