"""The HTML report in a real browser: Debian's Chromium, headless, driven by Selenium through
Debian's chromedriver (``make test`` installs both). Every picture renders from the file alone,
the best-against-dollars chart has a point per completed trial, and the page logs no error. A
screenshot is kept in ``.test-artifacts/`` (or ``$THRIFTY_TEST_ARTIFACTS``). In CI a missing
browser fails."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import missing

import thrifty as th
import thrifty.plot as tp

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("THRIFTY_TEST_ARTIFACTS", ROOT / ".test-artifacts"))


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        missing("Debian's chromium and chromium-driver are not installed (make test installs them with apt-get)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,4000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    web = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield web
    finally:
        web.quit()


def _wait(web: object, script: str, timeout_s: float = 30.0) -> object:
    deadline = time.monotonic() + timeout_s
    while True:
        value = web.execute_script(script)  # type: ignore[attr-defined]
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_the_html_report_renders_every_picture_offline(browser: object, tmp_path: Path) -> None:
    def objective(trial: th.TrialHandle) -> float | None:
        x = trial.params["x"]
        for step in range(1, 5):
            trial.report(x * step, step=step, cost_usd=0.01 + 0.02 * x, elapsed_s=0.0)
            if trial.should_stop():
                return None
        return 4 * x

    study = th.Study.create({"x": th.Float(0, 1), "lr": th.Float(1e-4, 1e-1, log=True)}, "max",
                            storage=f"sqlite:///{tmp_path}/b.db", name="browser", strategy="random", seed=2,
                            budget=th.Budget(trials=20))
    study.optimize(objective, n_trials=12, progress=False)
    path = tp.write_html_report(study, tmp_path / "report.html")
    browser.get(path.as_uri())  # type: ignore[attr-defined]
    n_figures = path.read_text(encoding="utf-8").count("<div class='figure'>")
    assert n_figures >= 7
    rendered = _wait(browser, "const p = document.querySelectorAll('.js-plotly-plot');"
                              f"return p.length === {n_figures} && Array.from(p).every(e => e._fullLayout) ? p.length : 0;")
    assert rendered == n_figures
    n_points = browser.execute_script("return document.getElementById('figure-0').data[0].x.length;")  # type: ignore[attr-defined]
    assert n_points == sum(1 for t in study.trials if t.state is th.TrialState.COMPLETED)
    drawn = browser.execute_script(  # type: ignore[attr-defined]
        "return document.querySelectorAll('#figure-0 .scatterlayer .point').length;")
    assert drawn >= n_points  # the markers are in the SVG, not only in the data
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "html_report.png"))  # type: ignore[attr-defined]
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]  # type: ignore[attr-defined]
    assert errors == []
