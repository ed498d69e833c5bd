"""Running a campaign without Django admin or the command line (issue 14): a project made in the
app up to a new member's first label, API tokens made and used in the UI, password change and
reset, and readable API documentation. All in Chromium, with no CSP violations."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from django.core import mail

from annotate.models import Annotation, ApiToken, AuditEvent, Guideline, Membership, Project, Role
from tests.e2e.conftest import login, settle

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _clean(page):
    assert not page.recorder.csp_violations, page.recorder.csp_violations
    assert not page.recorder.page_errors, page.recorder.page_errors


def test_project_creation_to_first_label_by_a_new_member(page, new_page, make_user, screenshot, tmp_path):
    make_user("admin", is_staff=True)
    login(page, "admin")
    page.click("text=New project")
    page.fill("input[name=name]", "Poems <b>A/B</b>")
    page.check("input[name=kind][value=pairwise]")
    page.fill("input[name=overlap]", "1")
    page.fill("textarea[name=dimensions]", "Imagery: Does it paint a picture? *\nRhythm")
    page.fill("textarea[name=guidelines]", "# Judge poems\n\nPrefer the one that **moves** you.")
    screenshot(page, "project-new", full_page=True)
    page.click("text=Create the project")
    page.wait_for_url(re.compile(r"/manage/members/"))
    project = Project.objects.get()
    assert project.name == "Poems <b>A/B</b>"  # stored as typed, shown escaped
    assert "<b>A/B</b>" not in page.content().replace("&lt;b&gt;A/B&lt;/b&gt;", "")
    assert list(project.dimensions.values_list("key", "required")) == [("imagery", True), ("rhythm", False)]
    assert Guideline.objects.get(project=project).version == 1
    assert Membership.objects.filter(project=project, user__username="admin", role=Role.MANAGER).exists()
    assert AuditEvent.objects.filter(project=project, action="project.create").exists()

    # A new labeler, with a password shown once.
    page.fill("input[name=username]", "newbie")
    page.select_option("select[name=role]", "labeler")
    page.click("form:has(input[name=username]) button[type=submit]")
    password = page.inner_text("#initial-password").strip()
    assert password

    # Prompts in.
    upload = tmp_path / "poems.jsonl"
    upload.write_text(
        "\n".join(
            json.dumps(
                {
                    "id": f"p{i}",
                    "prompt": f"Write a haiku about {w}.",
                    "candidates": [{"text": f"{w}\nin the morning\nlight"}, {"text": f"A {w}."}],
                }
            )
            for i, w in enumerate(["rain", "snow", "wind"])
        )
    )
    page.goto(f"/projects/{project.slug}/manage/import/")
    page.set_input_files("input[type=file]", str(upload))
    page.click("#import-form button[type=submit]")
    page.locator("#import-report h2", has_text="Imported").wait_for()
    settle(page)
    _clean(page)

    # The new member signs in with that password and labels.
    other = new_page()
    login(other, "newbie", password)
    other.click("text=Start labeling")
    other.click("#ack-button")
    other.wait_for_selector("#task-slot .task")
    other.keyboard.press("1")
    other.click(
        "#task-slot .response[data-position='0'] fieldset[data-dimension=imagery] .scale-option:nth-child(4)"
    )
    other.click(
        "#task-slot .response[data-position='1'] fieldset[data-dimension=imagery] .scale-option:nth-child(2)"
    )
    other.keyboard.press("Control+Enter")
    other.wait_for_function(
        "() => document.querySelector('#toast') && !document.querySelector('#toast').hidden"
    )
    settle(other)
    assert Annotation.objects.filter(labeler__username="newbie", task__project=project).count() == 1
    _clean(other)


def test_non_staff_cannot_create_projects_unless_the_site_allows_it(client, make_user, settings):
    user = make_user("someone")
    client.force_login(user)
    assert client.get("/projects/new/").status_code == 403
    assert client.post("/projects/new/", {"name": "x", "kind": "pairwise"}).status_code == 403
    settings.PREFHUB_ANYONE_CAN_CREATE_PROJECTS = True
    assert client.get("/projects/new/").status_code == 200


def test_bad_project_form_input_is_a_400_with_field_errors(client, make_user):
    client.force_login(make_user("staffer", is_staff=True))
    response = client.post("/projects/new/", {"name": "  ", "kind": "sideways", "overlap": 0})
    assert response.status_code == 400
    assert Project.objects.count() == 0


def test_api_token_created_in_the_ui_works_and_revocation_is_immediate(
    page, make_project, labeler_in, live_server, screenshot
):
    mine = make_project(name="Mine")
    other = make_project(name="Other")
    user = labeler_in(mine, "res", role="researcher")
    from annotate.services.projects import membership_add

    membership_add(project=other, user=user, role="researcher")
    login(page, "res")
    page.click("a.user-name")
    page.fill("input[name=name]", "cluster")
    # the list's caption is no label of one checkbox: clicking it ticked the first project
    page.click("#token-form legend:text-is('Projects')")
    assert page.eval_on_selector_all("input[name=projects]", "els => els.filter(e => e.checked).length") == 0
    assert f"Mine ({mine.slug})" in page.inner_text("#token-form")  # same-named projects told apart
    page.check(f"input[name=projects][value='{mine.pk}']")
    page.click("#token-form button[type=submit]")
    secret = page.inner_text("#token-secret").strip()
    screenshot(page, "tokens", full_page=False)
    assert secret and not ApiToken.objects.filter(digest=secret).exists()  # only a hash is stored
    headers = {"Authorization": f"Bearer {secret}"}
    listed = httpx.get(f"{live_server.url}/api/v1/projects/", headers=headers, timeout=10)
    assert listed.status_code == 200
    slugs = {p["slug"] for p in (listed.json().get("results", listed.json()))}
    assert slugs == {mine.slug}  # scoped to the ticked project
    page.reload()
    assert secret not in page.content()  # shown once
    page.click("#token-table button:has-text('Revoke')")
    page.wait_for_selector("#token-table td:text-is('revoked')")
    assert ApiToken.objects.filter(user=user).count() == 1  # the reload made no second token
    assert httpx.get(f"{live_server.url}/api/v1/projects/", headers=headers, timeout=10).status_code in (
        401,
        403,
    )
    _clean(page)


def test_password_change_and_reset(page, make_user, live_server):
    make_user("pat", password="old-password-123", email="pat@example.org")
    login(page, "pat", "old-password-123")
    page.click("text=Password")
    page.fill("input[name=old_password]", "old-password-123")
    page.fill("input[name=new_password1]", "a-new-and-long-password-1")
    page.fill("input[name=new_password2]", "a-new-and-long-password-1")
    page.click("main button[type=submit]")
    page.wait_for_selector("text=Your password was changed")
    page.click("button:has-text('Sign out')")

    page.goto("/accounts/login/")
    page.click("text=Forgot your password?")
    page.fill("input[name=email]", "pat@example.org")
    page.click("main button[type=submit]")
    page.wait_for_selector("text=Check your email")
    assert len(mail.outbox) == 1
    link = re.search(r"https?://\S+/accounts/password/reset/\S+/", mail.outbox[0].body).group(0)
    page.goto("/" + link.split("/", 3)[3])
    page.fill("input[name=new_password1]", "reset-password-456-long")
    page.fill("input[name=new_password2]", "reset-password-456-long")
    page.click("main button[type=submit]")
    page.wait_for_selector("text=Your new password is set")
    login(page, "pat", "reset-password-456-long")
    assert page.is_visible("text=Your projects")
    _clean(page)


def test_api_docs_are_readable_in_the_browser(page, make_user, screenshot):
    make_user("reader")
    login(page, "reader")
    page.goto("/api/docs/")
    page.wait_for_selector(".swagger-ui .opblock", timeout=20_000)
    assert page.locator(".swagger-ui .opblock").count() > 20
    assert "PrefHub API" in page.inner_text(".swagger-ui .info")
    screenshot(page, "api-docs", full_page=False)
    _clean(page)
