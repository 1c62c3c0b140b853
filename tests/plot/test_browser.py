"""The HTML report in a real browser: Debian's Chromium, headless, driven by Selenium through
Debian's chromedriver (``make test`` installs both). Every picture renders from the file alone,
the best-against-dollars chart has a point per completed trial, and the page logs no error. A
screenshot is kept in ``.test-artifacts/`` (or ``$THRIFTY_TEST_ARTIFACTS``). In CI a missing
browser fails."""

from __future__ import annotations

from pathlib import Path

from _browser import ARTIFACTS, severe_errors, wait_for

import thrifty as th
import thrifty.plot as tp


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
    rendered = wait_for(browser, "const p = document.querySelectorAll('.js-plotly-plot');"
                              f"return p.length === {n_figures} && Array.from(p).every(e => e._fullLayout) ? p.length : 0;")
    assert rendered == n_figures
    n_points = browser.execute_script("return document.getElementById('figure-0')._fullData[0].x.length;")  # type: ignore[attr-defined]
    assert n_points == sum(1 for t in study.trials if t.state is th.TrialState.COMPLETED)
    drawn = browser.execute_script(  # type: ignore[attr-defined]
        "return document.querySelectorAll('#figure-0 .scatterlayer .point').length;")
    assert drawn >= n_points  # the markers are in the SVG, not only in the data
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "html_report.png"))  # type: ignore[attr-defined]
    assert severe_errors(browser) == []
