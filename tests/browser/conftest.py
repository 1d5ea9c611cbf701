"""Fixtures of the dashboard tests: the browsers (tests/support/browser.py) and the daemon."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.google_api import FakeGoogleCalendarAPI
from tests.support.browser import new_driver
from tests.support.dashboard import (
    LiveDaemon,
    RefusingTokenEndpoint,
    start_daemon,
    write_config,
)


@pytest.fixture(scope="module")
def browser_js() -> Iterator[Any]:
    driver = new_driver(javascript=True)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def browser_no_js() -> Iterator[Any]:
    driver = new_driver(javascript=False)
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
