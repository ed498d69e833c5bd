import pytest

from tests.e2e.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_labeler_logs_in_and_sees_their_projects(page, make_user, make_project, labeler_in):
    project = make_project(name="Helpfulness round 1")
    user = labeler_in(project, "alice")
    make_project(name="Someone else's project")
    login(page, user.username)
    body = page.inner_text("body")
    assert "Helpfulness round 1" in body
    assert "Someone else's project" not in body
    assert page.recorder.csp_violations == []
