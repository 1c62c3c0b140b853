"""`thrifty dashboard` as a user meets it: a real process serving real HTTP over a SQLite study
file, read-only; its JSON API, /metrics and, in Debian's Chromium, the pages: the study list, the
best-against-dollars chart with a point per completed trial, and a trial told while the page is
open appearing without a reload."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from _browser import ARTIFACTS, severe_errors, wait_for
from _dashboard import dashboard, free_port
from conftest import HELPERS

import thrifty as th

TRACEBACK = 'Traceback (most recent call last):\n  File "train.py", line 9, in <module>\nRuntimeError: CUDA out of memory\n'


def _get(base: str, path: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(base + path, timeout=30) as r:
            return r.status, r.read(), r.headers.get("content-type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("content-type", "")


def _json(base: str, path: str):  # type: ignore[no-untyped-def]
    status, body, _ = _get(base, path)
    assert status == 200, (path, status, body[:300])
    return json.loads(body)


def _fill(study: th.Study, n: int) -> None:
    """n trials: most complete after 4 steps ($0.01 a step), every 4th is stopped at step 2, every
    7th fails with a traceback."""
    for i in range(n):
        t = study.ask()
        x = float(t.params["x"])
        steps = 2 if i % 4 == 3 else 4
        for step in range(1, steps + 1):
            t.report(x * step, step=step, cost_usd=0.01, elapsed_s=0.0)
        if i % 7 == 6:
            study.tell(t, state="failed", error=TRACEBACK, elapsed_s=0.0)
        elif steps == 2:
            study.tell(t, state="stopped", reason="scheduler: asha", elapsed_s=0.0)
        else:
            study.tell(t, 4 * x, elapsed_s=0.0)


def _usage(gpu_idle_share: float) -> th.ResourceUsage:
    return th.ResourceUsage(samples=60, interval_s=1.0, duration_s=60.0, cpu_percent_mean=95.0, cpu_percent_max=101.0,
                            rss_mb_max=2048.0, gpus=1, gpu_util_percent_mean=100 * (1 - gpu_idle_share),
                            gpu_memory_mb_max=8000.0, gpu_idle_share=gpu_idle_share)


def _gpu_study(url: str) -> None:
    """Study "gpu": trial 0's GPU sat idle 90% of the time, trial 1's was busy (the usage a
    runner would have sampled, told through the public API)."""
    study = th.Study.create({"x": th.Float(0, 1)}, "max", name="gpu", storage=url, strategy="random", seed=1)
    for share in (0.9, 0.1):
        t = study.ask()
        t.report(0.5, step=1, cost_usd=0.25, elapsed_s=60.0)
        study.tell(t, 0.5, usage=_usage(share))
    study.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    folder = tmp_path_factory.mktemp("dash")
    url = f"sqlite:///{folder}/studies.db"
    study = th.Study.create({"x": th.Float(0, 1), "lr": th.Float(1e-4, 1e-1, log=True)}, "max", name="web",
                            storage=url, strategy="random", seed=4, budget=th.Budget(usd=5.0))
    _fill(study, 30)
    study.close()
    _gpu_study(url)
    with dashboard(url) as base:
        yield base, url


def test_the_study_list_says_what_was_spent(served: tuple[str, str]) -> None:
    base, url = served
    rows = _json(base, "/api/studies")
    assert sorted(r["name"] for r in rows) == ["gpu", "web"]
    [row] = [r for r in rows if r["name"] == "web"]
    study = th.Study.load("web", storage=url)
    assert row["name"] == "web" and row["trials"] == 30
    assert row["spent_usd"] == pytest.approx(study.cost_usd)
    assert row["budget"]["usd"] == 5.0 and row["budget"]["usd_left"] == pytest.approx(5.0 - study.cost_usd)
    assert row["counts"]["completed"] == sum(1 for t in study.trials if t.state is th.TrialState.COMPLETED)


def test_trials_are_paged_and_sorted_on_the_server(served: tuple[str, str]) -> None:
    base, url = served
    study = th.Study.load("web", storage=url)
    page = _json(base, "/api/studies/web/trials?offset=5&limit=10")
    assert page["total"] == 30 and [t["number"] for t in page["trials"]] == list(range(5, 15))
    newest = _json(base, "/api/studies/web/trials?limit=3&desc=true")
    assert [t["number"] for t in newest["trials"]] == [29, 28, 27]
    by_value = _json(base, "/api/studies/web/trials?limit=5&sort=value&desc=true")
    best = sorted((t for t in study.trials if "value" in t.metrics), key=lambda t: -t.metrics["value"])[:5]
    assert [t["number"] for t in by_value["trials"]] == [t.number for t in best]
    status, body, _ = _get(base, "/api/studies/web/trials?sort=params")
    assert status == 400 and b"sort='params'" in body


def test_a_trial_detail_holds_its_curve_and_the_tail_of_its_error(served: tuple[str, str]) -> None:
    base, _ = served
    failed = _json(base, "/api/studies/web/trials/6")
    assert failed["state"] == "failed" and "CUDA out of memory" in failed["error_tail"]
    assert failed["note"] == "RuntimeError: CUDA out of memory"
    done = _json(base, "/api/studies/web/trials/0")
    assert [m["step"] for m in done["curve"] if m["step"] is not None][:4] == [1, 2, 3, 4]
    assert _get(base, "/api/studies/web/trials/999")[0] == 404
    assert _get(base, "/api/studies/nope/trials")[0] == 404
    assert _get(base, "/study/nope")[0] == 404


def test_figures_come_as_plotly_json_and_plotly_js_from_the_server(served: tuple[str, str]) -> None:
    base, url = served
    answer = _json(base, "/api/studies/web/figures/best_vs_cost")
    completed = sum(1 for t in th.Study.load("web", storage=url).trials if t.state is th.TrialState.COMPLETED)
    x = answer["figure"]["data"][0]["x"]  # plotly's packed float64 array
    assert x["dtype"] == "f8" and len(base64.b64decode(x["bdata"])) == 8 * completed
    assert _get(base, "/api/studies/web/figures/nope")[0] == 404
    status, body, ctype = _get(base, "/static/plotly.min.js")
    assert status == 200 and "javascript" in ctype and len(body) > 1_000_000
    _, page, _ = _get(base, "/study/web")
    assert b"'/static/plotly.min.js'" in page and b"cdn" not in page and b"https://" not in page


def test_metrics_speak_prometheus(served: tuple[str, str]) -> None:
    base, url = served
    status, body, ctype = _get(base, "/metrics")
    text = body.decode()
    study = th.Study.load("web", storage=url)
    assert status == 200 and ctype.startswith("text/plain")
    n_completed = sum(1 for t in study.trials if t.state is th.TrialState.COMPLETED)
    assert f'thrifty_trials{{state="completed",study="web"}} {float(n_completed)}' in text
    assert 'thrifty_budget_usd{study="web"} 5.0' in text
    spent = next(line for line in text.splitlines() if line.startswith('thrifty_spent_usd{study="web"}'))
    assert float(spent.split()[-1]) == pytest.approx(study.cost_usd)
    best = next(line for line in text.splitlines() if line.startswith("thrifty_best_value{"))
    assert float(best.split()[-1]) == pytest.approx(study.best.value)


def test_a_missing_database_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "thrifty", "dashboard", "--storage", f"sqlite:///{tmp_path}/none.db",
                        "--port", str(free_port())], capture_output=True, text=True, timeout=60, check=False)
    assert p.returncode == 1 and p.stderr.startswith("thrifty: error: ") and len(p.stderr.strip().splitlines()) == 1
    assert "no database" in p.stderr
    assert not (tmp_path / "none.db").exists()


def test_the_server_says_when_its_start_up_read_is_done(served: tuple[str, str]) -> None:
    base, _ = served
    deadline = time.monotonic() + 60
    while not (status := _json(base, "/api/status"))["warm"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status["warm"] and status["warm_s"] >= 0.0


def test_a_trial_whose_gpu_sat_idle_is_flagged(served: tuple[str, str]) -> None:
    base, _ = served
    page = _json(base, "/api/studies/gpu/trials?sort=number")
    assert [(r["number"], r["gpu_idle"]) for r in page["trials"]] == [(0, True), (1, False)]
    detail = _json(base, "/api/studies/gpu/trials/0")
    assert detail["usage"]["gpu_idle_share"] == 0.9 and detail["usage"]["rss_mb_max"] == 2048.0
    spend = _json(base, "/api/studies/gpu/figures/spend")["figure"]
    assert "1 trial held an idle GPU ($0.2500)" in spend["layout"]["title"]["text"]


def test_the_pages_in_a_browser_update_live(served: tuple[str, str], browser) -> None:  # type: ignore[no-untyped-def]
    base, url = served
    browser.get(base + "/")
    assert wait_for(browser, "return document.body.dataset.loaded && document.querySelectorAll('tr.study').length")
    assert sorted(browser.execute_script("return Array.from(document.querySelectorAll('tr.study')).map(r => r.dataset.name)")) \
        == ["gpu", "web"]
    browser.get(base + "/study/web")
    study = th.Study.load("web", storage=url)
    completed = sum(1 for t in study.trials if t.state is th.TrialState.COMPLETED)
    drawn = wait_for(browser, "const d = document.getElementById('fig-best_vs_cost');"
                           "return d && d._fullData ? d._fullData[0].x.length : 0;")
    assert drawn == completed
    assert wait_for(browser, "return document.getElementById('trials').dataset.total") == "30"
    # A worker tells one more trial while the page is open: it appears without a reload.
    writer = th.Study.load("web", storage=url)
    _fill(writer, 1)
    writer.close()
    assert wait_for(browser, "return document.getElementById('trials').dataset.total === '31' && "
                          "document.querySelector('#trials tr.trial').dataset.number === '30';", timeout_s=20)
    assert wait_for(browser, f"return document.getElementById('fig-best_vs_cost')._fullData[0].x.length === {completed + 1};")
    # The x axis switches to trials finished: the last point sits at the number of finished trials.
    finished = sum(1 for t in th.Study.load("web", storage=url).trials if t.state.is_finished)
    browser.execute_script("document.getElementById('against-trials').click();")
    assert wait_for(browser, "const d = document.getElementById('fig-best_vs_cost');"
                          "return d._fullLayout.xaxis.title.text === 'trials finished' ? Math.max(...d._fullData[1].x) : 0;") == finished
    browser.execute_script("document.querySelector('#trials tr.trial[data-number=\"6\"]').click();")
    assert wait_for(browser, "const d = document.getElementById('detail');"
                          "return d.style.display === 'block' && d.textContent.includes('CUDA out of memory');")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "dashboard_study.png"))
    assert severe_errors(browser) == []
    # A trial whose GPU sat idle is flagged in the table; its detail says how it used the machine.
    browser.get(base + "/study/gpu")
    assert wait_for(browser, "const r = document.querySelector('#trials tr.trial[data-number=\"0\"]');"
                          "return r && r.textContent.includes('GPU idle');")
    browser.execute_script("document.querySelector('#trials tr.trial[data-number=\"0\"]').click();")
    assert wait_for(browser, "return document.getElementById('detail').textContent.includes('idle 90% of the time');")
    assert severe_errors(browser) == []


def test_a_pipeline_study_shows_its_memo_cache_and_each_trial_s_stages(tmp_path: Path) -> None:
    sys.path.insert(0, HELPERS)
    from pipeline_worker import PARAMS, pipeline

    url = f"sqlite:///{tmp_path / 'piped.db'}"
    study = th.Study.create(pipeline=pipeline(str(tmp_path / "cache")), objective={"f1": "max"}, name="piped",
                            storage=url, scheduler=None, strategy="random", pricing={"local": 3.6})
    for p in PARAMS[:2]:  # the second keeps the first's stages 0-1: read from the cache
        study.enqueue(p)
    study.optimize(n_trials=2, progress=False)
    study.close()
    with dashboard(url) as base:
        memo = _json(base, "/api/studies/piped/summary")["memo_cache"]
        assert memo["hits"] == 1 and memo["misses"] == 2
        assert [s["name"] for s in memo["stages"]] == ["prep", "train", "eval"]
        first = _json(base, "/api/studies/piped/trials/0")["stages"]
        assert [r["outcome"] for r in first] == ["run", "run", "run"]
        second = _json(base, "/api/studies/piped/trials/1")["stages"]
        assert [(r["name"], r["outcome"]) for r in second] == [("prep", "skipped"), ("train", "hit"), ("eval", "run")]
        assert _json(base, "/api/studies/piped/trials/1")["cost_usd"] < _json(base, "/api/studies/piped/trials/0")["cost_usd"]
        plain = th.Study.create({"x": th.Float(0, 1)}, "max", name="plain", storage=url)
        plain.close()
        assert _json(base, "/api/studies/plain/summary")["memo_cache"] is None
