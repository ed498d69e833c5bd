"""Browser tests. The fixtures (browser, page, new_page, screenshot) live in tests/browser.py and are
registered suite-wide by tests/conftest.py, so one Chromium serves every test that needs it. Here:
the set-ups the labeling page's tests share (a labeler on the page; the acknowledgement dialog)."""

import pytest

from tests.browser import login, settle  # noqa: F401 - helpers imported by the tests from here


@pytest.fixture
def labeling_page(page, make_project, labeler_in, make_user):
    """``labeling_page(username, tasks=n, guidelines=..., **project_settings)``: a project
    (``make_project(**project_settings)``) with ``n`` tasks (``labeling_data.make_tasks``, with
    ``per_task`` and ``texts``), whose labeling page ``username`` opens on ``page`` as a labeler who
    has read ``guidelines`` (``open_labeling``). Returns (the project, the assignment id of the task
    on screen)."""
    from tests.e2e.labeling_data import make_tasks
    from tests.e2e.test_probe_plabel_helpers import open_labeling

    def _open(
        username: str, *, tasks: int, per_task: int = 2, texts=None, guidelines: str = "# Go", **settings
    ):
        project = make_project(**settings)
        make_tasks(project, count=tasks, per_task=per_task, texts=texts)
        shown = open_labeling(
            page, project, username, labeler_in=labeler_in, make_user=make_user, guidelines=guidelines
        )
        return project, shown

    return _open


@pytest.fixture
def ack_dialog(page, labeling_page, labeler_in):
    """``ack_dialog(username, **project_settings)``: ``username`` labels a project of three tasks
    (``labeling_page``), having read its version 1; a manager publishes version 2, and the next
    submit opens the dialog asking to acknowledge it. Returns (the project, the labeler, the
    manager, version 2)."""
    from django.contrib.auth import get_user_model

    from annotate.models import Role
    from annotate.services.guidelines import guideline_publish

    def _open(username: str, **settings):
        project, _ = labeling_page(username, tasks=3, guidelines="# V1", **settings)
        labeler = get_user_model().objects.get(username=username)
        manager = labeler_in(project, "mo", role=Role.MANAGER)
        v2 = guideline_publish(
            project=project, actor=manager, body="# V2\n\nSecond rules.", change_note="two"
        )
        page.keyboard.press("1")
        page.keyboard.press("Control+Enter")
        page.wait_for_selector("#ack-dialog[open]")
        settle(page)
        assert "version 2" in page.inner_text("#ack-title")
        return project, labeler, manager, v2

    return _open
