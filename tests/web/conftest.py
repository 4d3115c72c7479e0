"""The pages in a real browser: Debian's headless Chromium driven by selenium through Debian's
chromedriver (no browser is downloaded), against a real stack. Screenshots go to
$CELLBLOCK_SCREENSHOTS (default var/screenshots; `make screenshots` writes docs/screenshots,
which the README shows)."""

from __future__ import annotations

import base64
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DESKTOP = (1280, 1000)
PHONE = (390, 844)  # a phone's CSS pixels


def screenshot_dir() -> Path:
    where = Path(os.environ.get("CELLBLOCK_SCREENSHOTS", ROOT / "var" / "screenshots"))
    where.mkdir(parents=True, exist_ok=True)
    return where


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """One headless Chromium for the session; each test starts from a blank page of its own size."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            pytest.fail(f"{path} is missing: `make test` installs chromium and chromium-driver")
    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root, in a container: Chromium's own sandbox cannot start here
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: WebDriver) -> Iterator[WebDriver]:
    """The browser at desktop size, with a clean console; after the test, no page may have
    logged a Content-Security-Policy violation, a script error or a 5xx from the API (a 4xx
    is the network's message for a refusal that a test asked for, which the page handles)."""
    browser.set_window_size(*DESKTOP)
    browser.get("about:blank")
    browser.get_log("browser")  # drop what earlier tests left
    yield browser
    problems = [
        e["message"]
        for e in browser.get_log("browser")
        if e["level"] == "SEVERE" and not (e["source"] == "network" and re.search(r"status of 4\d\d", e["message"]))
    ]
    browser.get("about:blank")
    assert not problems, f"the page logged errors: {problems}"


def wait_for(driver: WebDriver, what: Callable[[WebDriver], Any], timeout: float = 60, message: str = "") -> Any:
    """WebDriverWait(...).until, failing with `message` and the page's status line."""
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(what)
    except TimeoutException:
        status = driver.execute_script("return document.getElementById('status')?.textContent")
        pytest.fail(f"timed out after {timeout}s: {message} (status: {status!r})")


def ready(driver: WebDriver, url: str) -> None:
    """Open `url` and wait until the page says it is ready (document.body.dataset.ready)."""
    driver.get(url)
    wait_for(driver, lambda d: d.execute_script("return document.body.dataset.ready") == "1", 30, f"{url} ready")


def shoot(driver: WebDriver, name: str) -> Path:
    """A screenshot of the whole page (beyond the window) as `name`.png."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path = screenshot_dir() / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path
