"""Headless Chromium through Selenium, and what the dashboard's browser tests do with it.

Debian's ``chromium`` and ``chromium-driver``; :func:`new_driver` skips the
calling test, saying why, where no browser is installed, unless
``FA_REQUIRE_BROWSER=1`` (set by ``.ci/run`` once it has installed them),
where that is a failure.
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.dashboard import PASSWORD, LiveDaemon, wait_for

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


def new_driver(javascript: bool) -> Any:
    """A headless Chromium, with JavaScript on or turned off."""
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


def screenshot(driver: Any, folder: Path, name: str) -> Path:
    """The whole page as a PNG (through the DevTools protocol, so it works without JavaScript)."""
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics["cssContentSize"]
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        },
    )
    path = folder / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.stat().st_size > 1000
    return path


def by_css(driver: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def all_css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def click(driver: Any, selector: str, within: Any = None) -> None:
    """Click and wait for the next page to load (a link or a form's button)."""
    from selenium.common.exceptions import WebDriverException

    page = by_css(driver, "html")
    by_css(within or driver, selector).click()

    def gone() -> bool:
        try:
            page.tag_name  # noqa: B018 - touching it raises once the page was replaced
        except WebDriverException:
            # Stale, or (Chromium, mid-navigation) "Node with given id does not
            # belong to the document": either way the old page is gone.
            return True
        return False

    wait_for(gone, 30, every=0.05)


def log_in(driver: Any, live: LiveDaemon, password: str = PASSWORD) -> None:
    driver.get(live.admin)
    assert driver.current_url.endswith("/admin/login")
    by_css(driver, "#username").send_keys("admin")
    by_css(driver, "#password").send_keys(password)
    click(driver, "#login")
