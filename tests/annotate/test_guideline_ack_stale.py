"""A labeling page left open while a manager publishes a new guideline version acknowledges the
version it showed. Only the current version may be acknowledged: an older one is refused (409
``guideline_not_current``, naming the current one) and never recorded, by the service, the API and
the labeling page's own endpoint (JSON from the workspace, the form of the acknowledgement page,
which then shows the current version to read)."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache
from django.urls import reverse
from rest_framework.test import APIClient

from annotate.models import GuidelineAck, Role
from annotate.services.guidelines import (
    GuidelineNotCurrent,
    guideline_acknowledge,
    guideline_acknowledge_read,
    guideline_publish,
)
from tests.conftest import add_tasks
from tests.races import second_is_a_conflict

pytestmark = pytest.mark.django_db


@pytest.fixture
def stale(make_project, labeler_in):
    """A project whose labeler read version 1; version 2 was then published (the labeler's page,
    opened before, still shows version 1)."""
    cache.clear()
    project = make_project(name="Guided")
    add_tasks(project, prompts=2)
    manager = labeler_in(project, role=Role.MANAGER)
    labeler = labeler_in(project)
    v1 = guideline_publish(project=project, actor=manager, body="Be kind.")
    v2 = guideline_publish(project=project, actor=manager, body="Be kind and brief.", change_note="Brevity")
    return project, labeler, v1, v2


# --- the service ---------------------------------------------------------------------------------------


def test_service_refuses_to_record_an_ack_of_a_version_that_is_not_current(stale):
    _project, labeler, v1, v2 = stale
    with pytest.raises(GuidelineNotCurrent) as refused:
        guideline_acknowledge(guideline=v1, user=labeler)
    assert refused.value.status_code == 409
    assert refused.value.details == {"current_version": 2, "current_guideline_id": v2.pk}
    assert "version 2" in refused.value.message
    assert not GuidelineAck.objects.exists()


def test_service_records_an_ack_of_the_current_version(stale):
    _project, labeler, _v1, v2 = stale
    guideline_acknowledge(guideline=v2, user=labeler)
    guideline_acknowledge(guideline=v2, user=labeler)  # twice: still one row
    assert list(GuidelineAck.objects.values_list("guideline_id", "user_id")) == [(v2.pk, labeler.pk)]


def test_service_acknowledge_read_refuses_the_old_version_by_id(stale):
    project, labeler, v1, _v2 = stale
    with pytest.raises(GuidelineNotCurrent):
        guideline_acknowledge_read(project=project, user=labeler, guideline_id=v1.pk)
    assert not GuidelineAck.objects.exists()


# --- the API ---------------------------------------------------------------------------------------------


def test_api_ack_of_the_version_a_stale_client_read_is_409_and_not_recorded(stale):
    project, labeler, v1, v2 = stale
    api = APIClient()
    api.force_authenticate(labeler)
    url = f"/api/v1/labeling/{project.slug}/acknowledge-guidelines"
    resp = api.post(url, {"guideline_id": v1.pk}, format="json")
    assert resp.status_code == 409 and resp.json()["error"] == "guideline_not_current"
    assert not GuidelineAck.objects.exists()
    resp = api.post(url, {"guideline_id": v2.pk}, format="json")
    assert resp.status_code == 200 and resp.json() == {"version": 2}
    assert list(GuidelineAck.objects.values_list("guideline_id", flat=True)) == [v2.pk]


# --- the labeling page's endpoint ----------------------------------------------------------------------


def _ack_json(client, project, body):
    return client.post(
        reverse("annotate:guideline_ack", args=[project.slug]),
        data=json.dumps(body),
        content_type="application/json",
    )


def test_page_json_ack_of_the_version_the_page_showed_is_409_once_a_newer_one_is_out(client, stale):
    project, labeler, v1, v2 = stale
    client.force_login(labeler)
    resp = _ack_json(client, project, {"guideline_id": v1.pk})
    assert resp.status_code == 409
    body = resp.json()
    assert body["error"] == "guideline_not_current"
    assert "version 2" in body["detail"]
    assert body["details"] == {"current_version": 2, "current_guideline_id": v2.pk}
    assert not GuidelineAck.objects.exists()
    # The page then reads the current version and acknowledges it.
    current = client.get(reverse("annotate:guideline_current", args=[project.slug])).json()
    assert current["pending"] is True and current["guideline"]["id"] == v2.pk
    resp = _ack_json(client, project, {"guideline_id": v2.pk})
    assert resp.status_code == 200
    assert resp.json() == {"ok": True, "version": 2, "pending": False}
    assert list(GuidelineAck.objects.values_list("guideline_id", flat=True)) == [v2.pk]


def test_page_json_ack_must_name_the_version_read(client, stale):
    project, labeler, _v1, _v2 = stale
    client.force_login(labeler)
    resp = _ack_json(client, project, {})
    assert resp.status_code == 400
    assert resp.json()["field"] == "guideline_id"
    assert not GuidelineAck.objects.exists()
    resp = _ack_json(client, project, {"guideline_id": 999_999})
    assert resp.status_code == 404
    assert not GuidelineAck.objects.exists()


def test_page_form_ack_of_an_old_version_shows_the_current_one_to_read(client, stale):
    project, labeler, v1, v2 = stale
    client.force_login(labeler)
    url = reverse("annotate:guideline_ack", args=[project.slug])
    resp = client.post(url, {"guideline_id": v1.pk})
    assert resp.status_code == 409
    html = resp.content.decode()
    assert "version 2 is the current one" in html
    assert "Be kind and brief." in html  # the current text, to read
    assert f'name="guideline_id" value="{v2.pk}"' in html  # and acknowledge
    assert f'value="{v1.pk}"' not in html
    assert not GuidelineAck.objects.exists()
    resp = client.post(url, {"guideline_id": v2.pk})
    assert resp.status_code == 302
    assert list(GuidelineAck.objects.values_list("guideline_id", flat=True)) == [v2.pk]


def test_page_form_ack_of_the_current_version_still_goes_to_labeling(client, stale):
    project, labeler, _v1, v2 = stale
    client.force_login(labeler)
    resp = client.post(reverse("annotate:guideline_ack", args=[project.slug]), {"guideline_id": v2.pk})
    assert resp.status_code == 302 and resp.url == reverse("annotate:label", args=[project.slug])


# --- a version published at the moment of the acknowledgement ----------------------------------------


@pytest.mark.postgres(reason="needs PostgreSQL for real concurrent transactions (set DATABASE_URL)")
@pytest.mark.django_db(transaction=True)
def test_an_ack_racing_a_publish_of_a_newer_version_is_refused_not_recorded(
    monkeypatch, make_project, labeler_in
):
    """The manager's publish of version 2 holds its transaction open; the labeler acknowledges
    version 1 meanwhile. The acknowledgement must wait for the publish and then be refused (409),
    not record version 1 from the state before the publish committed."""
    project = make_project()
    manager, labeler = labeler_in(project, role=Role.MANAGER), labeler_in(project)
    v1 = guideline_publish(project=project, actor=manager, body="Be kind.")
    first, conflict = second_is_a_conflict(
        monkeypatch,
        "annotate.services.guidelines.audit_record",
        lambda: guideline_publish(project=project, actor=manager, body="Be kind and brief."),
        lambda: guideline_acknowledge(guideline=v1, user=labeler),
    )
    assert first.result.version == 2
    assert isinstance(conflict, GuidelineNotCurrent)
    assert conflict.details == {"current_version": 2, "current_guideline_id": first.result.pk}
    assert not GuidelineAck.objects.exists()
