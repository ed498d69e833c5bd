"""Browser fixtures (registered for the whole suite in tests/conftest.py): Debian's Chromium driven by Playwright against pytest-django's live_server.

Screenshots go to artifacts/screenshots/ (git-ignored; CI keeps them as artifacts). Every page
records console errors and CSP violations; ``page_errors`` lets a test assert there were none.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def _playwright():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(_playwright):
    browser = _playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
    yield browser
    browser.close()


class PageRecorder:
    """Collects console errors, page errors, dialogs and CSP violations of one page."""

    def __init__(self, page) -> None:
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))

        def on_dialog(dialog):
            self.dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)

    @property
    def csp_violations(self) -> list[str]:
        return [m for m in self.console_errors if "Content Security Policy" in m]


@pytest.fixture(scope="session")
def _warm_live_server(live_server):
    """The live server's first request imports every URL module (scipy and the report code among
    them): seconds on a loaded 2-core machine. Pay it once here, not inside a page's 10 s timeout."""
    import urllib.request

    with urllib.request.urlopen(f"{live_server.url}/accounts/login/", timeout=120) as response:
        response.read()


@pytest.fixture
def page(browser, live_server, _warm_live_server, request):
    context = browser.new_context(viewport={"width": 1360, "height": 900}, base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.recorder = PageRecorder(page)
    yield page
    settle(page)
    context.close()


@pytest.fixture
def screenshot():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def _shot(page, name: str, full_page: bool = True) -> Path:
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return _shot


def settle(page, timeout: float = 10_000) -> None:
    """Wait until the page has no request of its own in flight (pages that fetch keep a count on
    ``<html data-pending>``), so the test never touches or flushes the database under a request."""
    try:
        page.wait_for_function(
            "() => (document.documentElement.dataset.pending || '0') === '0'", timeout=timeout
        )
        page.wait_for_load_state("networkidle", timeout=timeout)
    except Exception:  # noqa: S110 - a closed or crashed page has nothing left in flight
        pass


def login(page, username: str, password: str = "pw-for-tests-123") -> None:
    """Sign in through the real login form."""
    page.goto("/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


@pytest.fixture
def new_page(browser, live_server, _warm_live_server):
    """Another browser context (a second person at another computer), with its own recorder."""
    contexts = []

    def _open(width: int = 1360, height: int = 900):
        context = browser.new_context(viewport={"width": width, "height": height}, base_url=live_server.url)
        contexts.append(context)
        other = context.new_page()
        other.set_default_timeout(10_000)
        other.recorder = PageRecorder(other)
        return other

    yield _open
    for context in contexts:
        for other in context.pages:
            settle(other)
        context.close()
