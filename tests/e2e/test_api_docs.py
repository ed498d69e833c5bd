"""The API documentation in a real browser (issue 14): Swagger UI at /api/docs/ from vendored
assets, with no CSP violation, showing the areas as sections and the new operations (start a
project, members, publish guidelines) with their summaries, typed bodies and error schema."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW_OPERATIONS = (
    ("post", "/api/v1/projects/", "Start a project"),
    ("get", "/api/v1/projects/{slug}/members/", "List members"),
    ("post", "/api/v1/projects/{slug}/members/", "Add or invite a member"),
    (
        "patch",
        "/api/v1/projects/{slug}/members/{membership_id}/",
        "Change a member's role, or (re)activate it",
    ),
    ("delete", "/api/v1/projects/{slug}/members/{membership_id}/", "Deactivate a membership"),
    ("post", "/api/v1/projects/{slug}/guidelines/", "Publish a new guideline version"),
)


def _opblock(page, method: str, path: str):
    return page.locator(f".opblock-{method}:has(.opblock-summary-path[data-path='{path}'])")


def test_swagger_ui_shows_the_new_operations_readably(page, make_user, screenshot):
    make_user("reader", is_staff=True)
    login(page, "reader")
    page.goto("/api/docs/")
    page.wait_for_selector(".swagger-ui .opblock", timeout=20_000)
    assert "PrefHub API" in page.inner_text(".swagger-ui .info")
    assert "Authorization: Bearer" in page.inner_text(".swagger-ui .info")
    sections = [t.strip() for t in page.locator(".opblock-tag-section h3 .nostyle span").all_inner_texts()]
    for area in ("Projects", "Members", "Guidelines", "Labeling", "Exports", "Generation", "Training runs"):
        assert area in sections, sections
    assert "v1" not in sections
    for method, path, summary in NEW_OPERATIONS:
        block = _opblock(page, method, path)
        assert block.count() == 1, (method, path)
        assert block.locator(".opblock-summary-description").inner_text().strip() == summary
    # every operation carries a summary
    described = page.locator(".opblock .opblock-summary-description")
    assert described.count() == page.locator(".opblock").count() > 30
    assert all(text.strip() for text in described.all_inner_texts())
    screenshot(page, "api-docs-overview", full_page=False)

    # open "Add or invite a member": its description, typed request and the shown-once password
    block = _opblock(page, "post", "/api/v1/projects/{slug}/members/")
    block.locator(".opblock-summary").click()
    block.locator(".opblock-body").wait_for()
    body_text = block.inner_text()
    assert "initial password is in this response only" in body_text
    assert "username" in body_text and "role" in body_text
    responses = block.locator(".responses-table .response")
    codes = [c.strip() for c in responses.locator(".response-col_status").all_inner_texts()]
    assert codes[:1] == ["201"] and {"400", "403", "404"} <= set(codes)
    block.scroll_into_view_if_needed()
    screenshot(page, "api-docs-add-member", full_page=False)

    # the run status, untyped before: its fields are listed
    runs = _opblock(page, "get", "/api/v1/projects/{slug}/runs/{run_id}/")
    runs.locator(".opblock-summary").click()
    runs.locator(".opblock-body").wait_for()
    example = runs.locator(".responses-table .response[data-code='200'] .highlight-code")
    example.wait_for()
    text = example.inner_text()
    assert '"registered_endpoint"' in text and '"metrics"' in text and '"points"' in text, text[:500]
    runs.scroll_into_view_if_needed()
    screenshot(page, "api-docs-training-run", full_page=False)

    assert not page.recorder.csp_violations, page.recorder.csp_violations
    assert not page.recorder.page_errors, page.recorder.page_errors
    # the assets are ours: nothing is fetched from another origin
    base = page.url.split("/api/docs/")[0]
    assert all(url.startswith((base, "data:")) for url in page.recorder.requests), page.recorder.requests
