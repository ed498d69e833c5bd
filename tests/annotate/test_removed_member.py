"""A member whose membership was deactivated is told so (403, with a message that says why), on the
API, on the labeling page's JSON calls and on the pages themselves; someone who was never a member
still gets 404 (the project's existence is not revealed). The site's 404 and 403 pages show the
message they were raised with, escaped."""

from __future__ import annotations

import json
from importlib import import_module

import pytest
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.test import override_settings
from django.urls import include, path, reverse
from rest_framework.test import APIClient

from annotate.models import Annotation, Role
from annotate.services.guidelines import guideline_acknowledge, guideline_publish
from annotate.services.leasing import task_claim_next
from annotate.services.projects import membership_deactivate
from tests.conftest import add_tasks

pytestmark = pytest.mark.django_db

NOT_FOUND = "No such project."
REMOVED_MESSAGE = "You are no longer a member of this project; ask its manager."


@pytest.fixture
def world(make_project, labeler_in, make_user):
    """A project with tasks and three labelers who read its guidelines, each holding a lease:
    ``active`` stays, ``removed`` has their labeler membership deactivated (after leasing);
    ``stranger`` is a member of another project only."""
    cache.clear()
    project = make_project(name="Pairs")
    add_tasks(project, prompts=4)
    manager = labeler_in(project, role=Role.MANAGER)
    guideline = guideline_publish(project=project, actor=manager, body="Be kind.")
    active, removed = labeler_in(project), labeler_in(project)
    other = make_project(name="Elsewhere")
    stranger = labeler_in(other)
    leases = {}
    for user in (active, removed):
        guideline_acknowledge(guideline=guideline, user=user)
        leases[user.pk] = task_claim_next(project=project, labeler=user)
    membership_deactivate(project=project, user=removed, role=Role.LABELER)
    return {
        "project": project,
        "active": active,
        "removed": removed,
        "stranger": stranger,
        "lease_of": lambda user: leases[user.pk].pk,
    }


def _api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


# --- the API ---------------------------------------------------------------------------------------


def test_api_next_removed_labeler_gets_403_saying_they_were_removed(world):
    resp = _api(world["removed"]).post(f"/api/v1/labeling/{world['project'].slug}/next", {}, format="json")
    assert resp.status_code == 403
    body = resp.json()
    assert body["error"] == "membership_ended"
    assert body["detail"] == REMOVED_MESSAGE


def test_api_submit_on_a_lease_by_a_removed_labeler_gets_403_saying_they_were_removed(world):
    removed = world["removed"]
    resp = _api(removed).post(
        f"/api/v1/labeling/assignments/{world['lease_of'](removed)}/submit", {"choice": "left"}, format="json"
    )
    assert resp.status_code == 403
    assert resp.json() == {"error": "membership_ended", "detail": REMOVED_MESSAGE}
    assert not Annotation.objects.exists()


def test_api_project_read_by_a_removed_member_is_403_and_by_a_stranger_404(world):
    slug = world["project"].slug
    removed = _api(world["removed"]).get(f"/api/v1/projects/{slug}/")
    assert removed.status_code == 403 and removed.json()["detail"] == REMOVED_MESSAGE
    stranger = _api(world["stranger"]).get(f"/api/v1/projects/{slug}/")
    assert stranger.status_code == 404
    assert stranger.json()["detail"] == NOT_FOUND
    assert "member" not in stranger.json()["detail"]


def test_api_never_member_still_gets_404_and_active_member_is_served(world):
    slug = world["project"].slug
    resp = _api(world["stranger"]).post(f"/api/v1/labeling/{slug}/next", {}, format="json")
    assert resp.status_code == 404 and resp.json()["detail"] == NOT_FOUND
    resp = _api(world["active"]).post(f"/api/v1/labeling/{slug}/next", {}, format="json")
    assert resp.status_code in (200, 204)
    active = world["active"]
    resp = _api(active).post(
        f"/api/v1/labeling/assignments/{world['lease_of'](active)}/submit", {"choice": "left"}, format="json"
    )
    assert resp.status_code in (200, 201)


def test_api_a_token_narrowed_to_other_projects_still_gets_404(world):
    """A token that does not reach the project answers as for a stranger, removed or not."""
    from tests.conftest import bearer

    other = world["stranger"].memberships.get().project
    from annotate.services.projects import membership_add

    membership_add(project=other, user=world["removed"], role=Role.LABELER)
    client = bearer(world["removed"], projects=[other])
    resp = client.post(f"/api/v1/labeling/{world['project'].slug}/next", {}, format="json")
    assert resp.status_code == 404


# --- the labeling page's JSON calls ------------------------------------------------------------------


def _post_json(client, url, body=None):
    return client.post(url, data=json.dumps(body or {}), content_type="application/json")


@pytest.mark.parametrize("action", ["submit", "skip", "undo", "renew"])
def test_page_lease_calls_by_a_removed_labeler_say_they_were_removed(client, world, action):
    removed = world["removed"]
    client.force_login(removed)
    url = reverse(f"annotate:label_{action}", args=[world["project"].slug, world["lease_of"](removed)])
    body = {"choice": "left"} if action == "submit" else {"reason": "unsure"} if action == "skip" else {}
    resp = _post_json(client, url, body)
    assert resp.status_code == 403
    assert resp.json() == {"error": "membership_ended", "detail": REMOVED_MESSAGE}
    assert not Annotation.objects.exists()


def test_page_next_by_a_removed_labeler_says_they_were_removed_a_stranger_gets_404(client, world):
    url = reverse("annotate:label_next", args=[world["project"].slug])
    client.force_login(world["removed"])
    resp = _post_json(client, url)
    assert resp.status_code == 403 and resp.json()["detail"] == REMOVED_MESSAGE
    client.force_login(world["stranger"])
    resp = _post_json(client, url)
    assert resp.status_code == 404 and resp.json()["detail"] == NOT_FOUND


def test_page_submit_by_an_active_member_still_works(client, world):
    active = world["active"]
    client.force_login(active)
    url = reverse("annotate:label_submit", args=[world["project"].slug, world["lease_of"](active)])
    resp = _post_json(client, url, {"choice": "left"})
    assert resp.status_code == 200 and resp.json()["ok"] is True


# --- the page itself (reloaded) ----------------------------------------------------------------------


def test_label_page_reloaded_by_a_removed_labeler_is_a_403_page_with_the_message(client, world):
    client.force_login(world["removed"])
    resp = client.get(reverse("annotate:label", args=[world["project"].slug]))
    assert resp.status_code == 403
    html = resp.content.decode()
    assert REMOVED_MESSAGE.replace("'", "&#x27;") in html


def test_label_page_for_a_stranger_is_a_404_page_revealing_nothing(client, world):
    client.force_login(world["stranger"])
    resp = client.get(reverse("annotate:label", args=[world["project"].slug]))
    assert resp.status_code == 404
    html = resp.content.decode()
    assert "no longer a member" not in html
    assert world["project"].name not in html


def test_label_page_for_an_active_member_is_served(client, world):
    client.force_login(world["active"])
    assert client.get(reverse("annotate:label", args=[world["project"].slug])).status_code == 200


# --- the error pages show their message, escaped ------------------------------------------------------


def _raise_404(request):
    raise Http404("No such <b>widget</b> here.")


def _raise_plain_404(request):
    raise Http404


def _raise_403(request):
    raise PermissionDenied("You may not <i>touch</i> this.")


# This module is the URL conf of the tests below: the site's own routes and error handlers, and
# views that raise.
urlpatterns = [
    path("boom/", _raise_404),
    path("plain/", _raise_plain_404),
    path("forbidden/", _raise_403),
    path("", include("config.urls")),
]
handler404 = getattr(import_module("config.urls"), "handler404", None)


@override_settings(ROOT_URLCONF=__name__)
def test_the_403_page_shows_the_message_it_was_raised_with_escaped(client):
    resp = client.get("/forbidden/")
    assert resp.status_code == 403
    html = resp.content.decode()
    assert "You may not &lt;i&gt;touch&lt;/i&gt; this." in html and "<i>touch</i>" not in html


@override_settings(ROOT_URLCONF=__name__)
def test_the_404_page_shows_the_message_it_was_raised_with_escaped(client):
    resp = client.get("/boom/")
    assert resp.status_code == 404
    html = resp.content.decode()
    assert "No such &lt;b&gt;widget&lt;/b&gt; here." in html
    assert "<b>widget</b>" not in html


@override_settings(ROOT_URLCONF=__name__)
def test_the_404_page_without_a_message_shows_no_exception_name(client):
    for url in ("/plain/", "/no-such-address/"):
        html = client.get(url).content.decode()
        assert "Http404" not in html and "Resolver404" not in html
        assert "This page does not exist" in html


def test_the_404_page_for_a_project_slug_nobody_has_says_no_such_project(client, make_user):
    client.force_login(make_user())
    resp = client.get(reverse("annotate:label", args=["no-such-project"]))
    assert resp.status_code == 404
    assert NOT_FOUND in resp.content.decode()
