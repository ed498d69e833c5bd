"""Hostile model output (and prompts, and guidelines) stays inert in a real browser."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from annotate.models import Annotation, Role, TaskKind
from annotate.services.guidelines import guideline_publish
from tests.annotate.test_rendering import XSS_CORPUS
from tests.e2e.conftest import login, settle
from tests.e2e.labeling_data import make_task_with

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Each payload, if it ever ran, would set window.__pwned or call alert() (a dialog the recorder sees).
EXTRA = [
    '<img src=x onerror="window.__pwned=1">',
    "<script>window.__pwned=1</script>",
    '<a href="#" onclick="window.__pwned=1" id="clickme">click me</a>',
    '<div hx-get="/accounts/logout/" hx-trigger="load">htmx</div>',
    "[x](javascript:window.__pwned=1)",
    "![x](https://evil.example/track.png) ![y](//evil.example/t.png) ![z](data:image/png;base64,iVBORw0KGgo=)",
    '<link rel="stylesheet" href="https://evil.example/x.css"><video src="https://evil.example/v.mp4" autoplay>',
    '<iframe srcdoc="<script>parent.__pwned=1</script>"></iframe>',
]
CORPUS = XSS_CORPUS + EXTRA
HOSTILE_CONVERSATION = [
    {"role": "system", "content": "<script>alert('system')</script>"},
    {"role": "user", "content": "![me](https://evil.example/me.png) <svg onload=alert('user')> what is 2+2?"},
]

INERT_CHECK = """() => {
  const bad = [];
  for (const el of document.querySelectorAll('.md, .md *, .rank-snippet')) {
    if (/^(SCRIPT|IMG|SVG|IFRAME|OBJECT|EMBED|VIDEO|AUDIO|LINK|STYLE|FORM|INPUT|BUTTON|BASE|META|MATH)$/i.test(el.tagName)) bad.push(el.tagName);
    for (const a of el.attributes) {
      if (/^(on|hx-|data-|style$|src$|srcdoc$|action$)/i.test(a.name)) bad.push(el.tagName + '@' + a.name);
      if (a.name === 'href' && !/^(https?:|mailto:)/i.test(a.value)) bad.push('href=' + a.value);
    }
  }
  return bad;
}"""


def assert_inert(page, live_server):
    settle(page)
    assert page.evaluate(INERT_CHECK) == []
    assert page.evaluate("window.__pwned") is None
    assert page.recorder.dialogs == []
    assert page.recorder.csp_violations == []
    assert page.recorder.page_errors == []
    host = urlsplit(live_server.url).netloc
    foreign = [u for u in page.recorder.requests if urlsplit(u).netloc not in ("", host)]
    assert foreign == []


def test_hostile_candidates_render_as_inert_text(page, live_server, make_project, labeler_in):
    project = make_project(name="Red team", kind=TaskKind.RANKING, ranking_k=16)
    chunks = [CORPUS[i : i + 12] for i in range(0, len(CORPUS), 12)]
    for i, chunk in enumerate(chunks):
        make_task_with(project, chunk, conversation=HOSTILE_CONVERSATION, external_id=f"x{i}")
    manager = labeler_in(project, "mallory", role=Role.MANAGER)
    labeler_in(project, "ivan")
    guideline_publish(project=project, actor=manager, body="\n\n".join(CORPUS))

    login(page, "ivan")
    page.goto(f"/projects/{project.slug}/label/")
    # The guidelines (hostile too) come first.
    page.wait_for_selector("#ack-button")
    assert_inert(page, live_server)
    page.click("#ack-button")

    for _ in chunks:
        page.wait_for_selector("#task-slot .rank-item")
        page.wait_for_load_state("networkidle")
        text = page.inner_text("#task-slot")
        assert "<script>" in text or "[image: x]" in text  # shown as text, not run
        page.keyboard.press("g")  # the guidelines panel too
        page.keyboard.press("g")
        page.mouse.wheel(0, 20000)
        assert_inert(page, live_server)
        old = page.get_attribute("#task-slot .task", "data-assignment-id")
        page.keyboard.press("Control+Enter")
        page.keyboard.press("Control+Enter")  # submit the order as shown
        page.wait_for_function(
            "old => { const t = document.querySelector('#task-slot .task');"
            " return !t || t.dataset.assignmentId !== old; }",
            arg=old,
        )
    page.wait_for_selector("#task-slot .task-done")
    settle(page)
    assert Annotation.objects.count() == len(chunks)
    assert_inert(page, live_server)


def test_hostile_text_is_inert_on_the_pairwise_page_and_in_the_editor_preview(
    page, live_server, make_project, labeler_in
):
    project = make_project(name="Red team pairs")
    make_task_with(
        project,
        [EXTRA[0] + "\n\n" + EXTRA[3], EXTRA[2] + "\n\n" + EXTRA[5]],
        conversation=HOSTILE_CONVERSATION,
    )
    labeler_in(project, "judy")
    labeler_in(project, "ken", role=Role.MANAGER)

    login(page, "judy")
    page.goto(f"/projects/{project.slug}/label/")
    page.wait_for_selector("#task-slot .task")
    page.wait_for_load_state("networkidle")
    assert "click me" in page.inner_text("#task-slot")
    page.click("#task-slot .response-body:has-text('click me')")
    assert_inert(page, live_server)

    page.context.clear_cookies()
    login(page, "ken")
    page.goto(f"/projects/{project.slug}/manage/guidelines/")
    page.fill("textarea[name=body]", "\n\n".join(CORPUS))
    page.wait_for_selector("#guideline-preview :text('[image: x]')")
    page.wait_for_load_state("networkidle")
    assert_inert(page, live_server)
