"""Running a judge on task ids none of which is a task of the project says so.

Before: with "only tasks not judged yet" (the API's default) the refusal read "Judge j already
judged every task." (or "... is judging (job 1), every task."), although the judge had judged
nothing: the ids were another project's, mistyped, or the list was empty. A script's author was
sent looking for a job that never ran.
"""

from __future__ import annotations

import pytest

from annotate.models import JudgeJob, Task
from tests.annotate.test_judges import fake_server  # noqa: F401 (fixture)
from tests.annotate.test_judges_api import setup  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("only_unjudged", [True, False])
def test_task_ids_of_no_task_of_the_project_are_refused_as_such(setup, only_unjudged):  # noqa: F811
    project, _r, _m, _tasks, client = setup
    base = f"/api/v1/projects/{project.slug}"
    judge = client.post(f"{base}/judges/", {"name": "j", "endpoint": "api-judge-ep"}, format="json").json()
    missing = max(Task.objects.values_list("pk", flat=True)) + 1000
    for ids in ([missing], [], [missing, 2**63]):
        resp = client.post(
            f"{base}/judges/{judge['id']}/jobs/",
            {"task_ids": ids, "only_unjudged": only_unjudged},
            format="json",
        )
        assert resp.status_code == 400, resp.json()
        body = resp.json()
        assert body["field"] == "task_ids"
        assert "already judged" not in body["detail"] and "task of this project" in body["detail"], body
    assert not JudgeJob.objects.exists()
