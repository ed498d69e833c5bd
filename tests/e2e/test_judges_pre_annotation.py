"""A labeler on a project that turned pre-annotation on sees the AI judge's verdict preselected
(the preferred response highlighted, the strength chosen), its rationale as text, and submits it;
the annotation records that it was pre-annotated. No CSP violation, no script run."""

from __future__ import annotations

import pytest

from annotate.judges.services import judge_create, judge_job_create, judge_job_run
from annotate.models import Annotation, Assignment
from annotate.services.guidelines import guideline_acknowledge, guideline_publish
from annotate.services.projects import project_update_settings
from generation.openai_server import serve_in_thread
from generation.services import endpoint_create
from tests.annotate.judge_fakes import FakeJudgeBackend
from tests.annotate.test_judges import make_pairs
from tests.e2e.conftest import login, settle

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_labeler_sees_the_preselected_verdict_and_submits_it(
    page, screenshot, make_project, make_user, labeler_in, settings
):
    settings.PREFHUB_ALLOWED_MODEL_HOSTS = ["127.0.0.1"]
    server, url = serve_in_thread(FakeJudgeBackend(), served_model_name="fake-judge")
    try:
        boss = make_user("pre-boss")
        project = make_project(name="Pre-annotated")
        guideline = guideline_publish(project=project, actor=boss, body="Prefer the helpful answer.")
        (task,) = make_pairs(project, {"one": ("Answer q=5", "Answer q=1")}).values()
        endpoint = endpoint_create(
            name="pre-ep", backend="openai", model="fake-judge", config={"base_url": url}
        )
        judge = judge_create(project=project, name="pre", endpoint=endpoint)
        judge_job_run(job_id=judge_job_create(judge=judge).pk)
    finally:
        server.shutdown()
        server.server_close()
    project_update_settings(project=project, judge_pre_annotation=True)
    labeler = labeler_in(project, "pre-labeler")
    guideline_acknowledge(guideline=guideline, user=labeler)

    login(page, labeler.username)
    page.goto(f"/projects/{project.slug}/label/")
    page.wait_for_selector("#task-slot .task")
    settle(page)
    lease = Assignment.objects.get(labeler=labeler, state="live")
    slot0 = task.slots.get(slot=0).candidate_id
    side = "left" if lease.shown_order[0] == slot0 else "right"
    assert page.is_checked(f"input[name=choice][value={side}]")
    assert page.is_checked("input[name=strength][value='3']")
    position = "0" if side == "left" else "1"
    assert "is-preferred" in page.get_attribute(f".response[data-position='{position}']", "class")
    assert "<script>" in page.inner_text("[data-pre-annotation]")
    assert page.evaluate("window.__judge_xss") is None
    screenshot(page, "label-pre-annotated")
    page.click("#task-slot .btn-submit")
    page.wait_for_function(f"() => !document.querySelector(\"[data-assignment-id='{lease.pk}']\")")
    settle(page)
    ann = Annotation.objects.get(labeler=labeler)
    assert ann.pre_annotated and ann.choice == "a" and ann.strength == 3
    assert page.recorder.csp_violations == [] and page.recorder.page_errors == []
