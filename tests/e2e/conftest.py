"""Browser tests. The fixtures (browser, page, new_page, screenshot) live in tests/browser.py and are
registered suite-wide by tests/conftest.py, so one Chromium serves every test that needs it."""

from tests.browser import login, settle  # noqa: F401 - helpers imported by the tests from here
