"""API endpoints for running a campaign without the pages (issue 14): start a project, manage its
members (add, invite, change role, deactivate, reactivate), publish guidelines. The same services
as the pages, audited with the caller as actor; answers checked against the OpenAPI document."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate
from django.utils.text import slugify
from rest_framework.test import APIClient

from annotate.models import AuditEvent, Guideline, Membership, Project, Role
from annotate.services.guidelines import guideline_publish
from annotate.services.leasing import task_claim_next
from tests.conftest import add_tasks, bearer
from tests.openapi import assert_documented

pytestmark = pytest.mark.django_db

PROJECTS = "/api/v1/projects/"
MEMBERS = "/api/v1/projects/{slug}/members/"
MEMBER = "/api/v1/projects/{slug}/members/{membership_id}/"
GUIDELINES = "/api/v1/projects/{slug}/guidelines/"


def _as(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def _error(resp, status: int, field: str | None = None) -> dict:
    assert resp.status_code == status, resp.content
    body = resp.json()
    assert set(body) >= {"error", "detail"} and body["detail"]
    if field is not None:
        assert body.get("field") == field, body
    return body


# --- start a project ------------------------------------------------------------------------------


def test_staff_start_an_ab_project_with_dimensions_and_guidelines(make_user):
    admin = make_user(is_staff=True)
    resp = _as(admin).post(
        PROJECTS,
        {
            "name": "Poems <b>A/B</b>",
            "kind": "pairwise",
            "overlap": 3,
            "lease_minutes": 20,
            "allow_tie": False,
            "strength_scale": False,
            "rating_scale_max": 7,
            "dimensions": [
                {"label": "Imagery", "description": "Does it paint a picture?", "required": True},
                {"label": "Rhythm"},
            ],
            "guidelines": "# Judge poems\n\nPrefer the one that moves you.",
        },
        format="json",
    )
    assert resp.status_code == 201, resp.content
    assert_documented(resp, "POST", PROJECTS)
    body = resp.json()
    project = Project.objects.get(slug=body["slug"])
    assert body["slug"] == slugify("Poems <b>A/B</b>") and project.name == "Poems <b>A/B</b>"
    assert (project.overlap, project.lease_ttl_seconds, project.rating_scale_max) == (3, 1200, 7)
    assert (project.allow_tie, project.allow_both_bad, project.strength_scale) == (False, True, False)
    assert [(d["key"], d["required"]) for d in body["dimensions"]] == [("imagery", True), ("rhythm", False)]
    assert body["dimensions"][0]["description"] == "Does it paint a picture?"
    guideline = Guideline.objects.get(project=project)
    assert guideline.version == 1 and guideline.author == admin
    assert Membership.objects.filter(project=project, user=admin, role=Role.MANAGER, is_active=True).exists()
    assert AuditEvent.objects.filter(project=project, action="project.create", actor=admin).exists()
    assert AuditEvent.objects.filter(project=project, action="guideline.publish", actor=admin).exists()
    # the creator sees it in their list, and may manage it
    assert [p["slug"] for p in _as(admin).get(PROJECTS).json()["results"]] == [project.slug]
    assert _as(admin).get(MEMBERS.format(slug=project.slug)).status_code == 200


def test_a_ranking_project_takes_its_own_settings_and_defaults(make_user):
    resp = _as(make_user(is_staff=True)).post(
        PROJECTS,
        {"name": "Rank them", "kind": "ranking", "ranking_k": 6, "allow_rank_ties": True},
        format="json",
    )
    assert resp.status_code == 201, resp.content
    project = Project.objects.get(slug="rank-them")
    assert (project.kind, project.ranking_k, project.allow_rank_ties) == ("ranking", 6, True)
    assert (project.overlap, project.lease_ttl_seconds, project.rating_scale_max) == (1, 900, 5)
    assert not Guideline.objects.filter(project=project).exists()  # no guidelines given: none published


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x", "kind": "triangle"}, "kind"),
        ({"name": "x", "overlap": 0}, "overlap"),
        ({"name": "x", "overlap": 101}, "overlap"),
        ({"name": "x", "lease_minutes": 0}, "lease_minutes"),
        ({"name": "x", "ranking_k": 17}, "ranking_k"),
        ({"name": "x", "rating_scale_max": 11}, "rating_scale_max"),
        ({"name": "x", "overlap": "many"}, "overlap"),
        ({"name": "x", "dimensions": [{"label": "A"}, {"label": "a"}]}, "dimensions"),
        ({"name": "x", "dimensions": [{"description": "no label"}]}, "dimensions.0.label"),
        ({"name": "x", "dimensions": "Helpfulness"}, "dimensions"),
        ({"name": "!!!"}, "name"),
    ],
)
def test_bad_project_input_is_a_400_naming_the_field(make_user, payload, field):
    resp = _as(make_user(is_staff=True)).post(PROJECTS, payload, format="json")
    _error(resp, 400, field)
    assert_documented(resp, "POST", PROJECTS)
    assert not Project.objects.exists()


def test_a_taken_project_address_is_a_409(make_user, make_project):
    make_project(name="Taken")
    resp = _as(make_user(is_staff=True)).post(PROJECTS, {"name": "Taken"}, format="json")
    _error(resp, 409, "slug")
    assert_documented(resp, "POST", PROJECTS)


def test_who_may_start_projects(make_user, make_project, settings):
    """can_create_projects decides: staff yes, others only when the site allows it, never through a
    token narrowed to some projects."""
    settings.PREFHUB_ANYONE_CAN_CREATE_PROJECTS = False
    user = make_user()
    resp = _as(user).post(PROJECTS, {"name": "Mine"}, format="json")
    _error(resp, 403)
    assert_documented(resp, "POST", PROJECTS)
    assert APIClient().post(PROJECTS, {"name": "Anon"}, format="json").status_code in (401, 403)
    staff = make_user(is_staff=True)
    other = make_project()
    Membership.objects.create(project=other, user=staff, role=Role.MANAGER)
    _error(bearer(staff, projects=[other]).post(PROJECTS, {"name": "Scoped"}, format="json"), 403)
    assert bearer(staff).post(PROJECTS, {"name": "Unscoped"}, format="json").status_code == 201
    settings.PREFHUB_ANYONE_CAN_CREATE_PROJECTS = True
    assert _as(user).post(PROJECTS, {"name": "Mine"}, format="json").status_code == 201
    assert set(Project.objects.values_list("slug", flat=True)) == {other.slug, "unscoped", "mine"}


def test_the_api_takes_the_fields_and_bounds_of_the_new_project_page():
    """One set of rules for both ways in: the API's fields and limits are the page form's."""
    from annotate.apis import ProjectCreateSerializer
    from annotate.views.account import ProjectStartForm

    api = ProjectCreateSerializer().fields
    page = ProjectStartForm().fields
    assert set(api) == set(page)
    for name, field in page.items():
        if name in ("dimensions", "guidelines"):
            continue  # text lines on the page, a list in the API; the service bounds the guidelines
        for attr in ("min_value", "max_value", "max_length"):
            assert getattr(field, attr, None) == getattr(api[name], attr, None), (name, attr)
        if field.initial is not None:
            assert api[name].default == field.initial, name


# --- members --------------------------------------------------------------------------------------


@pytest.fixture
def team(make_project, labeler_in, make_user):
    project = make_project()
    add_tasks(project, prompts=2)
    people = {role: labeler_in(project, role=role) for role in Role.values}
    other = make_project()
    return {
        "project": project,
        "slug": project.slug,
        "other": other,
        "outsider": labeler_in(other, role=Role.MANAGER),
        "stranger": make_user(),
        **people,
    }


def _membership(team, role: str) -> Membership:
    return Membership.objects.get(project=team["project"], user=team[role], role=role)


def test_managers_list_members(team):
    resp = _as(team["manager"]).get(MEMBERS.format(slug=team["slug"]))
    assert resp.status_code == 200
    assert_documented(resp, "GET", MEMBERS)
    rows = resp.json()["results"]
    assert {(r["username"], r["role"], r["is_active"]) for r in rows} == {
        (team[role].username, role, True) for role in Role.values
    }


def test_adding_an_existing_user_gives_them_the_role_and_is_audited(team, make_user):
    newcomer = make_user(email="n@example.org")
    resp = _as(team["manager"]).post(
        MEMBERS.format(slug=team["slug"]),
        {"username": newcomer.username, "role": "researcher"},
        format="json",
    )
    assert resp.status_code == 201, resp.content
    assert_documented(resp, "POST", MEMBERS)
    body = resp.json()
    assert body["account_created"] is False and body["initial_password"] is None
    assert (body["username"], body["email"], body["role"], body["is_active"]) == (
        newcomer.username,
        "n@example.org",
        "researcher",
        True,
    )
    event = AuditEvent.objects.get(project=team["project"], action="membership.add")
    assert event.actor == team["manager"] and event.details["username"] == newcomer.username


def test_inviting_a_new_person_creates_an_account_whose_password_is_shown_once(team):
    resp = _as(team["manager"]).post(
        MEMBERS.format(slug=team["slug"]),
        {"username": "fresh.face", "email": "fresh@example.org", "role": "labeler"},
        format="json",
    )
    assert resp.status_code == 201, resp.content
    assert_documented(resp, "POST", MEMBERS)
    assert "no-store" in resp["Cache-Control"]
    body = resp.json()
    assert body["account_created"] is True and len(body["initial_password"]) >= 16
    user = authenticate(username="fresh.face", password=body["initial_password"])
    assert user is not None and user.email == "fresh@example.org"
    assert body["initial_password"] not in str(list(AuditEvent.objects.values_list("details", flat=True)))
    # the new labeler can label at once
    claimed = bearer(user).post(f"/api/v1/labeling/{team['slug']}/next", {}, format="json")
    assert claimed.status_code == 200, claimed.content


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "username"),
        ({"username": "two words"}, "username"),
        ({"username": "x" * 151}, "username"),
        ({"username": "ok", "role": "boss"}, "role"),
        ({"username": "ok", "email": "not-an-address"}, "email"),
    ],
)
def test_bad_member_input_is_a_400_naming_the_field(team, payload, field):
    resp = _as(team["manager"]).post(MEMBERS.format(slug=team["slug"]), payload, format="json")
    _error(resp, 400, field)
    assert_documented(resp, "POST", MEMBERS)


def test_an_email_longer_than_the_account_can_hold_is_a_400_not_a_500(team, client):
    """An address the validator accepts but the user's email column (254) cannot hold: refused by
    the service, through the API and the members page alike, and no account is made."""
    from django.contrib.auth import get_user_model

    email = "a" * 250 + "@example.org"
    resp = _as(team["manager"]).post(
        MEMBERS.format(slug=team["slug"]), {"username": "long.mail", "email": email}, format="json"
    )
    _error(resp, 400, "email")
    client.force_login(team["manager"])
    page = client.post(
        f"/projects/{team['slug']}/manage/members/",
        {"username": "long.mail", "email": email, "role": "labeler"},
    )
    assert page.status_code in (200, 400)
    assert not get_user_model().objects.filter(username="long.mail").exists()


def test_a_role_the_member_already_holds_is_refused(team):
    resp = _as(team["manager"]).post(
        MEMBERS.format(slug=team["slug"]),
        {"username": team["labeler"].username, "role": "labeler"},
        format="json",
    )
    assert "already" in _error(resp, 400, "username")["detail"]


def test_changing_a_labelers_role_releases_their_tasks_and_audits_both_steps(team):
    lease = task_claim_next(project=team["project"], labeler=team["labeler"])
    assert lease is not None
    old = _membership(team, "labeler")
    url = MEMBER.format(slug=team["slug"], membership_id=old.pk)
    resp = _as(team["manager"]).patch(url, {"role": "researcher"}, format="json")
    assert resp.status_code == 200, resp.content
    assert_documented(resp, "PATCH", MEMBER)
    body = resp.json()
    assert body["role"] == "researcher" and body["is_active"] and body["id"] != old.pk
    old.refresh_from_db()
    assert not old.is_active
    lease.refresh_from_db()
    assert lease.state == "released"
    actions = set(
        AuditEvent.objects.filter(project=team["project"], actor=team["manager"]).values_list(
            "action", flat=True
        )
    )
    assert {"membership.add", "membership.deactivate"} <= actions
    # the same role again, or a role that does not exist
    new_url = MEMBER.format(slug=team["slug"], membership_id=body["id"])
    _error(_as(team["manager"]).patch(new_url, {"role": "researcher"}, format="json"), 400, "role")
    _error(_as(team["manager"]).patch(new_url, {"role": "boss"}, format="json"), 400, "role")


def test_deactivate_and_reactivate_a_membership(team):
    membership = _membership(team, "labeler")
    url = MEMBER.format(slug=team["slug"], membership_id=membership.pk)
    client = _as(team["manager"])
    resp = client.delete(url)
    assert resp.status_code == 200, resp.content
    assert_documented(resp, "DELETE", MEMBER)
    assert resp.json()["is_active"] is False and resp.json()["leases_released"] == 0
    _error(client.delete(url), 400)  # already inactive
    # a deactivated labeler is refused at once, told they were removed (403, not a 404)
    refused = bearer(team["labeler"]).post(f"/api/v1/labeling/{team['slug']}/next", {}, format="json")
    assert refused.status_code == 403 and refused.json()["error"] == "membership_ended"
    _error(client.patch(url, {"role": "manager"}, format="json"), 400, "role")  # reactivate first
    resp = client.patch(url, {"is_active": True}, format="json")
    assert resp.status_code == 200 and resp.json()["is_active"] is True
    assert_documented(resp, "PATCH", MEMBER)
    _error(client.patch(url, {"is_active": True}, format="json"), 400, "is_active")
    resp = client.patch(url, {"is_active": False}, format="json")
    assert resp.status_code == 200 and resp.json()["is_active"] is False
    resp = client.get(url)
    assert resp.status_code == 200 and resp.json()["is_active"] is False
    assert_documented(resp, "GET", MEMBER)
    actions = list(AuditEvent.objects.filter(project=team["project"]).values_list("action", flat=True))
    assert actions.count("membership.deactivate") == 2 and actions.count("membership.reactivate") == 1


@pytest.mark.parametrize("payload", [{}, {"role": "manager", "is_active": True}, {"is_active": "maybe"}])
def test_a_change_is_one_of_role_or_is_active(team, payload):
    url = MEMBER.format(slug=team["slug"], membership_id=_membership(team, "labeler").pk)
    resp = _as(team["manager"]).patch(url, payload, format="json")
    _error(resp, 400)
    assert_documented(resp, "PATCH", MEMBER)


def test_a_manager_cannot_give_up_their_own_manager_role(team):
    own = _membership(team, "manager")
    url = MEMBER.format(slug=team["slug"], membership_id=own.pk)
    _error(_as(team["manager"]).delete(url), 400)
    _error(_as(team["manager"]).patch(url, {"role": "labeler"}, format="json"), 400)
    own.refresh_from_db()
    assert own.is_active
    assert not Membership.objects.filter(
        project=team["project"], user=team["manager"], role="labeler"
    ).exists()


def test_only_managers_of_the_project_manage_members(team):
    slug = team["slug"]
    membership = _membership(team, "labeler")
    url = MEMBER.format(slug=slug, membership_id=membership.pk)
    for role in ("labeler", "researcher"):
        client = _as(team[role])
        assert client.get(MEMBERS.format(slug=slug)).status_code == 403
        assert client.post(MEMBERS.format(slug=slug), {"username": "x"}, format="json").status_code == 403
        assert client.patch(url, {"role": "manager"}, format="json").status_code == 403
        assert client.delete(url).status_code == 403
    for who in ("outsider", "stranger"):
        client = _as(team[who])
        assert client.get(MEMBERS.format(slug=slug)).status_code == 404
        assert client.delete(url).status_code == 404
    # a manager elsewhere naming this project's membership under their own project: not found
    other_url = MEMBER.format(slug=team["other"].slug, membership_id=membership.pk)
    assert _as(team["outsider"]).delete(other_url).status_code == 404
    assert _as(team["outsider"]).patch(other_url, {"is_active": False}, format="json").status_code == 404
    # the manager's token narrowed to another project reaches nothing here
    Membership.objects.create(project=team["other"], user=team["manager"], role=Role.MANAGER)
    scoped = bearer(team["manager"], projects=[team["other"]])
    assert scoped.get(MEMBERS.format(slug=slug)).status_code == 404
    assert scoped.delete(url).status_code == 404
    assert (
        bearer(team["manager"], projects=[team["project"]]).get(MEMBERS.format(slug=slug)).status_code == 200
    )
    membership.refresh_from_db()
    assert membership.is_active and membership.role == "labeler"


# --- guidelines -----------------------------------------------------------------------------------


def test_managers_publish_a_new_guideline_version(team):
    guideline_publish(project=team["project"], actor=None, body="Be kind.")
    url = GUIDELINES.format(slug=team["slug"])
    resp = _as(team["manager"]).post(
        url, {"body": "Be kind and brief.", "change_note": "Brevity"}, format="json"
    )
    assert resp.status_code == 201, resp.content
    assert_documented(resp, "POST", GUIDELINES)
    assert (resp.json()["version"], resp.json()["change_note"]) == (2, "Brevity")
    event = AuditEvent.objects.get(project=team["project"], action="guideline.publish", actor=team["manager"])
    assert event.details["version"] == 2
    # labelers read it (and are asked to acknowledge it)
    listed = _as(team["labeler"]).get(url)
    assert [g["version"] for g in listed.json()["results"]] == [2, 1]
    assert_documented(listed, "GET", GUIDELINES)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "body"),
        ({"body": "   "}, "body"),
        ({"body": "Be kind."}, "body"),  # the same as the current version
        ({"body": "New", "change_note": "x" * 301}, "change_note"),
        ({"body": ["not", "text"]}, "body"),
    ],
)
def test_bad_guidelines_are_a_400_naming_the_field(team, payload, field):
    guideline_publish(project=team["project"], actor=None, body="Be kind.")
    resp = _as(team["manager"]).post(GUIDELINES.format(slug=team["slug"]), payload, format="json")
    _error(resp, 400, field)
    assert_documented(resp, "POST", GUIDELINES)
    assert Guideline.objects.filter(project=team["project"]).count() == 1


def test_only_managers_publish_guidelines(team):
    url = GUIDELINES.format(slug=team["slug"])
    for role in ("labeler", "researcher"):
        assert _as(team[role]).post(url, {"body": "Mine now"}, format="json").status_code == 403
        assert _as(team[role]).get(url).status_code == 200
    assert _as(team["outsider"]).post(url, {"body": "Mine now"}, format="json").status_code == 404
    Membership.objects.create(project=team["other"], user=team["manager"], role=Role.MANAGER)
    scoped = bearer(team["manager"], projects=[team["other"]])
    assert scoped.post(url, {"body": "Mine now"}, format="json").status_code == 404
    assert not Guideline.objects.filter(project=team["project"]).exists()
    assert (
        bearer(team["manager"], projects=[team["project"]])
        .post(url, {"body": "Ok"}, format="json")
        .status_code
        == 201
    )


@pytest.mark.parametrize("kind", ["pairwise", "ranking"])
def test_the_page_and_the_api_make_the_same_project(make_user, kind):
    """The same input through /projects/new/ and POST /api/v1/projects/ gives the same settings."""
    admin = make_user(is_staff=True)
    client = _as(admin)
    common = {"kind": kind, "overlap": 2, "rating_scale_max": 4, "ranking_k": 5, "allow_rank_ties": True,
              "allow_tie": True, "allow_both_bad": False, "strength_scale": True}  # fmt: skip
    page = client.post(
        "/projects/new/",
        {
            **{k: v for k, v in common.items() if v is not False},
            "name": "By page",
            "lease_minutes": 7,
            "dimensions": "Helpfulness: Does it help? *",
        },
    )
    assert page.status_code == 302, page.content
    api = client.post(
        PROJECTS,
        {
            **common,
            "name": "By api",
            "lease_minutes": 7,
            "dimensions": [{"label": "Helpfulness", "description": "Does it help?", "required": True}],
        },
        format="json",
    )
    assert api.status_code == 201, api.content
    fields = ("kind", "overlap", "lease_ttl_seconds", "rating_scale_max", "ranking_k", "allow_rank_ties",
              "allow_tie", "allow_both_bad", "strength_scale")  # fmt: skip
    by_page, by_api = (Project.objects.get(slug=s) for s in ("by-page", "by-api"))
    assert [getattr(by_page, f) for f in fields] == [getattr(by_api, f) for f in fields]
    dims = [list(p.dimensions.values("key", "label", "description", "required")) for p in (by_page, by_api)]
    assert (
        dims[0]
        == dims[1]
        == [{"key": "helpfulness", "label": "Helpfulness", "description": "Does it help?", "required": True}]
    )
