"""The members page that shows a new account's initial password must not be cached.

Before: adding an unknown username on the members page answered 201 with the initial password in
the page and no ``Cache-Control`` header (the API's answer carries ``no-store``; the tokens page,
which shows a secret once, too), so the browser's cache and back button could show the password
again to whoever used the machine next. Now: that answer is ``Cache-Control: no-store``, as the
API's is.
"""

from __future__ import annotations

import pytest
from django.test import Client

from annotate.models import Role

pytestmark = pytest.mark.django_db


def test_the_page_showing_an_initial_password_is_never_cached(make_project, labeler_in):
    project = make_project(name="Team")
    manager = labeler_in(project, role=Role.MANAGER)
    client = Client()
    client.force_login(manager)
    resp = client.post(
        f"/projects/{project.slug}/manage/members/", {"username": "newbie", "email": "", "role": "labeler"}
    )
    assert resp.status_code == 201
    assert resp.context["created"]["password"] in resp.content.decode()
    assert "no-store" in resp.headers.get("Cache-Control", "")
