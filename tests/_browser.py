"""A real browser for the tests that look at pages: Debian's Chromium, headless, through Debian's
chromedriver and Selenium (``make test`` installs both with apt-get). Locally a missing browser
skips; in CI (``CI=true``) it fails. Screenshots go to ``.test-artifacts/`` (or
``$THRIFTY_TEST_ARTIFACTS``)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ARTIFACTS = Path(os.environ.get("THRIFTY_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / ".test-artifacts"))


def chromium(missing: Any) -> Iterator[Any]:
    """A headless Chromium WebDriver (``missing(reason)`` when the browser is not installed)."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        missing("Debian's chromium and chromium-driver are not installed (make test installs them with apt-get)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,4000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    web = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield web
    finally:
        web.quit()


def wait_for(web: Any, script: str, timeout_s: float = 30.0) -> Any:
    """Run ``script`` in the page until it returns something truthy (or the time is up); its value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = web.execute_script(script)
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def severe_errors(web: Any) -> list[dict[str, Any]]:
    """The page's console errors."""
    return [e for e in web.get_log("browser") if e["level"] == "SEVERE"]
