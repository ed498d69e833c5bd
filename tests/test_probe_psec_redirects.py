"""Penetration probe (psec): open redirects. The review queue's actions go back to ``next`` and
sign-in goes on to ``next``: neither may send the browser to another site."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

OFFSITE = [
    "https://evil.example/",
    "//evil.example/",
    "/\\evil.example/",
    "\\\\evil.example/",
    "///evil.example/",
    "http:/evil.example/",
    " //evil.example/",
    "/%2F/evil.example/",
    "javascript:alert(1)",
]


def _offsite(location: str) -> bool:
    from urllib.parse import urlsplit

    loc = location.strip().replace("\\", "/")
    return (
        loc.startswith("//")
        or urlsplit(loc).scheme not in ("", "http", "https")
        or bool(urlsplit(loc).netloc)
    )


@pytest.mark.parametrize("target", OFFSITE)
def test_the_review_action_goes_back_on_this_site_only(make_project, labeler_in, target):
    project = make_project()
    manager = labeler_in(project, role="manager")
    client = Client()
    client.force_login(manager)
    resp = client.post(
        f"/projects/{project.slug}/manage/review/action/", {"action": "nothing", "next": target}
    )
    assert resp.status_code == 302
    assert not _offsite(resp["Location"]), resp["Location"]


@pytest.mark.parametrize("target", OFFSITE)
def test_sign_in_goes_on_on_this_site_only(make_user, target):
    user = make_user(password="pw-for-tests-123")
    client = Client()
    resp = client.post(
        f"/accounts/login/?next={target}", {"username": user.username, "password": "pw-for-tests-123"}
    )
    assert resp.status_code == 302, resp.status_code
    assert not _offsite(resp["Location"]), resp["Location"]
