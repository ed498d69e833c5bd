"""Probe of the API documentation page (/api/docs/) with methods and content negotiation other
than a browser's GET: an ``OPTIONS`` request (what a CORS preflight or an HTTP client's discovery
sends, no sign-in needed) was a 500 (``TemplateDoesNotExist``: DRF answers OPTIONS with a metadata
body, which the page's HTML-only template renderer has no template for)."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    return Client(raise_request_exception=False)


def test_options_on_the_api_docs_answers_the_allowed_methods_not_a_500(client):
    resp = client.options("/api/docs/")
    assert resp.status_code == 200
    assert {m.strip() for m in resp["Allow"].split(",")} >= {"GET", "HEAD", "OPTIONS"}
    assert resp.content == b""


def test_the_api_docs_page_still_renders_and_refuses_writes(client):
    assert client.get("/api/docs/").status_code == 200
    assert client.get("/api/docs/?script=").status_code == 200
    assert client.head("/api/docs/").status_code == 200
    for method in ("post", "put", "patch", "delete"):
        assert getattr(client, method)("/api/docs/").status_code == 405


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/api/docs/?format=json", {}),
        ("/api/docs/?format=%00", {}),
        ("/api/docs/", {"HTTP_ACCEPT": "application/json"}),
        ("/api/docs/?lang=%00", {}),
        ("/api/docs/?script=&lang=" + "x" * 5000, {}),
    ],
)
def test_odd_negotiation_on_the_api_docs_is_never_a_server_error(client, path, headers):
    assert client.get(path, **headers).status_code < 500
