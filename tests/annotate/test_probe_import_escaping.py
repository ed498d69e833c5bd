"""Probe: text that arrives by import (prompt, responses, ids, model names, tags, metadata, the
file's name) is escaped on every page that shows it: the labeling page and its task fragments, the
review queue, the progress, leaderboard, report and audit pages, and the import page's own report
of bad lines."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotate.models import Annotation, Prompt, Task
from annotate.services.projects import membership_add

pytestmark = pytest.mark.django_db

EVIL = "<img src=x onerror=alert(1)>"
SCRIPT = "<script>alert(2)</script>"
MARKERS = (EVIL, SCRIPT, "onerror=alert(1)>")


def _hostile_line(i: int) -> dict:
    return {
        "id": f"{EVIL}{i}",
        "messages": [
            {"role": "system", "content": f"sys {SCRIPT}"},
            {"role": "user", "content": f"Q{i} {SCRIPT} {EVIL} [x](javascript:alert(3))"},
        ],
        "metadata": {EVIL: SCRIPT},
        "tags": [EVIL],
        "candidates": [
            {"text": f"A {EVIL}\n\n<b>bold</b> {SCRIPT}", "model": f"m-{EVIL}", "model_version": SCRIPT},
            {"text": f"B {SCRIPT}", "model": f"n-{SCRIPT}"},
        ],
    }


def _assert_inert(html: str, where: str) -> None:
    for marker in MARKERS:
        assert marker not in html, f"{where}: {marker!r} is not escaped"
    assert 'href="javascript' not in html.lower(), where


def test_imported_text_is_escaped_everywhere_it_is_shown(client, make_project, make_user):
    project = make_project()
    manager = make_user("boss")
    membership_add(project=project, user=manager, role="manager")
    membership_add(project=project, user=manager, role="labeler")
    client.force_login(manager)
    body = "".join(json.dumps(_hostile_line(i)) + "\n" for i in range(2)).encode()
    url = reverse("annotate:manage_import", args=[project.slug])
    response = client.post(url, {"file": SimpleUploadedFile(f"{EVIL}.jsonl", body), "format": "auto"})
    assert response.status_code == 200, response.content[:500]
    _assert_inert(response.content.decode(), "import page")
    assert Prompt.objects.filter(project=project).count() == 2

    # the same ids again: the report of bad lines quotes them
    response = client.post(url, {"file": SimpleUploadedFile("again.jsonl", body), "format": "auto"})
    assert response.status_code == 400
    html = response.content.decode()
    _assert_inert(html, "import report")
    assert "&lt;img src=x onerror=alert(1)&gt;0" in html  # the id is shown, escaped

    # a labeler's view: the page, then the task fragment the page fetches
    page = client.get(reverse("annotate:label", args=[project.slug]))
    assert page.status_code == 200
    _assert_inert(page.content.decode(), "label page")
    nxt = client.post(
        reverse("annotate:label_next", args=[project.slug]), "{}", content_type="application/json"
    )
    assert nxt.status_code == 200
    payload = nxt.json()
    fragment = payload.get("html", "")
    assert "Q" in fragment and "&lt;script&gt;alert(2)&lt;/script&gt;" in fragment
    _assert_inert(fragment, "task fragment")
    assert "[x](javascript:alert(3))" in fragment  # left as text, not made a link

    # annotate both tasks, then the manager's pages
    for task in Task.objects.filter(project=project):
        Annotation.objects.create(task=task, labeler=manager, choice="a", rationale=SCRIPT)
    pages = {
        "progress": reverse("annotate:manage_progress", args=[project.slug]),
        "review": reverse("review:queue", args=[project.slug]),
        "leaderboard": reverse("annotate:leaderboard", args=[project.slug]),
        "report": reverse("reports:project", args=[project.slug]),
        "audit": reverse("annotate:manage_audit", args=[project.slug]),
    }
    for name, page_url in pages.items():
        resp = client.get(page_url)
        assert resp.status_code == 200, (name, resp.status_code)
        _assert_inert(resp.content.decode(), name)
    review = client.get(pages["review"]).content.decode()
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in review  # the texts are shown there, escaped
