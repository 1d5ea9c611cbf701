"""Headless Chromium (Debian's ``chromium`` and ``chromium-driver``) through Selenium.

The tests skip, saying why, only where no browser is installed; with
``FA_REQUIRE_BROWSER=1`` (set by ``.ci/run`` once it has installed the
packages) a missing browser is a failure instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.harness import (
    LiveDaemon,
    RefusingTokenEndpoint,
    start_daemon,
    write_config,
)
from tests.fakes.google_api import FakeGoogleCalendarAPI

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _missing_browser() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    return None


def _driver(javascript: bool) -> Any:
    why = _missing_browser()
    if why:
        if os.environ.get("FA_REQUIRE_BROWSER") == "1":
            pytest.fail(f"no browser, but FA_REQUIRE_BROWSER=1: {why}")
        pytest.skip(f"no browser on this machine: {why}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1000",
        "--lang=en-GB",
    ):
        options.add_argument(argument)
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2}
        )
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.implicitly_wait(5)  # find_element waits for the next page's elements
    return driver


@pytest.fixture(scope="module")
def browser_js() -> Iterator[Any]:
    driver = _driver(javascript=True)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def browser_no_js() -> Iterator[Any]:
    driver = _driver(javascript=False)
    yield driver
    driver.quit()


@pytest.fixture(params=["javascript", "no-javascript"])
def browser(request: pytest.FixtureRequest) -> Any:
    """Each test runs twice: with JavaScript on, and turned off."""
    name = "browser_js" if request.param == "javascript" else "browser_no_js"
    driver = request.getfixturevalue(name)
    driver.delete_all_cookies()
    return driver


@pytest.fixture
def google_api() -> Iterator[FakeGoogleCalendarAPI]:
    with FakeGoogleCalendarAPI() as api:
        api.add_calendar("primary", "bob@example.com")
        yield api


@pytest.fixture
def token_endpoint() -> Iterator[RefusingTokenEndpoint]:
    endpoint = RefusingTokenEndpoint()
    yield endpoint
    endpoint.stop()


@pytest.fixture
def live(
    tmp_path: Path, google_api: FakeGoogleCalendarAPI, token_endpoint: RefusingTokenEndpoint
) -> Iterator[LiveDaemon]:
    """The daemon on the test config, with a login, after one sync."""
    config = write_config(tmp_path, google_api.endpoint, token_endpoint.url)
    with start_daemon(config) as daemon:
        yield daemon
