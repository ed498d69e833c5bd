"""A URL under /api/ that matches no route answers 404 in the API's JSON error shape.

Before: an id that is not a whole number (``/api/v1/projects/<slug>/runs/abc/``), a mistyped
endpoint or a trailing-slash slip got the site's HTML "Page not found" page, which an API client
cannot read (``{"error": ..., "detail": ...}`` everywhere else). Pages keep the HTML page."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/projects/demo/runs/abc/",
        "/api/v1/projects/demo/runs/-1/resume/",
        "/api/v1/no-such-endpoint",
        "/api/v1/labeling/assignments/1.5/submit",
    ],
)
def test_an_unknown_api_url_answers_json(client, path):
    resp = client.get(path)
    assert resp.status_code == 404
    assert resp["Content-Type"].startswith("application/json")
    body = resp.json()
    assert body["error"] == "not_found" and body["detail"]


def test_a_page_url_keeps_the_html_page(client):
    resp = client.get("/projects/no-such/label/nope/")
    assert resp.status_code == 404 and resp["Content-Type"].startswith("text/html")
    assert b"<html" in resp.content.lower()
