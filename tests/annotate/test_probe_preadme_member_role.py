"""``PATCH projects/<slug>/members/<id>/ {"role": R}`` when the member already holds R.

The refusal named ``username`` as the bad field, a field the PATCH body does not have (it came
from the add-member rule); the client's own field is ``role``."""

from __future__ import annotations

import pytest

from annotate.models import Membership, Role
from annotate.services.manage import member_add
from tests.conftest import bearer


@pytest.mark.django_db
def test_a_role_the_member_already_holds_is_refused_on_role(make_project, make_user):
    project = make_project()
    boss = make_user()
    member_add(project=project, actor=None, username=boss.username, role=Role.MANAGER)
    person = make_user()
    labeler, _ = member_add(project=project, actor=boss, username=person.username, role=Role.LABELER)
    member_add(project=project, actor=boss, username=person.username, role=Role.RESEARCHER)
    resp = bearer(boss).patch(
        f"/api/v1/projects/{project.slug}/members/{labeler.pk}/", {"role": "researcher"}, format="json"
    )
    assert resp.status_code == 400
    assert resp.json()["field"] == "role" and "already a researcher" in resp.json()["detail"]
    assert Membership.objects.get(pk=labeler.pk).is_active  # nothing changed
