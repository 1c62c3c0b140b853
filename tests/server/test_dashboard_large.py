"""The dashboard at 100,000 trials, in Debian's Chromium: the trial table pages within stated
times. The study is written with ``Study.add_trials`` (one transaction, seconds).

Stated times (generous: they catch a table that reads or sorts the whole study in the browser or
on every click, not a slow machine; the measured numbers are in ``benchmarks/RESULTS.md``,
"Dashboard"): the first page and each next page within ``PAGE_S``; the first page sorted by value
within ``SORTED_S`` (generous: it may wait for the server's start-up read of the study and its pictures, started when the server
starts)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import pytest
from _browser import ARTIFACTS, severe_errors, wait_for
from _dashboard import dashboard

import thrifty as th

N_TRIALS = 100_000
PAGE_S = 5.0
SORTED_S = 120.0


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[float]]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('big')}/big.db"
    study = th.Study.create({"x": th.Float(0, 1), "lr": th.Float(1e-4, 1e-1, log=True)}, "max", name="big",
                            storage=url)
    rng = random.Random(7)
    values = [rng.random() for _ in range(N_TRIALS)]  # trial i's value
    assert study.add_trials([({"x": x, "lr": 10 ** rng.uniform(-4, -1)}, x) for x in values]) == N_TRIALS
    with dashboard(url) as base:
        yield base, values


def _rows(browser: object) -> list[int]:
    return browser.execute_script(  # type: ignore[attr-defined]
        "return Array.from(document.querySelectorAll('#trials tr.trial')).map(r => Number(r.dataset.number));")


def _timed(browser: object, script: str, limit_s: float) -> float:
    t0 = time.monotonic()
    assert wait_for(browser, script, timeout_s=limit_s), f"not within {limit_s} s: {script}"
    return time.monotonic() - t0


def test_the_table_pages_at_100000_trials_within_the_stated_times(big: tuple[str, list[float]], browser) -> None:  # type: ignore[no-untyped-def]
    base, values = big
    browser.get(base + "/study/big")
    _timed(browser, f"return document.getElementById('trials').dataset.total === '{N_TRIALS}'", PAGE_S)
    assert _rows(browser) == list(range(N_TRIALS - 1, N_TRIALS - 51, -1))  # newest first
    browser.execute_script("document.getElementById('next').click();")
    _timed(browser, f"return document.querySelector('#trials tr.trial').dataset.number === '{N_TRIALS - 51}'", PAGE_S)
    assert _rows(browser) == list(range(N_TRIALS - 51, N_TRIALS - 101, -1))
    # Sorted by value on the server: the best 50 of 100,000, best first (the header's second click: descending).
    best = sorted(range(N_TRIALS), key=lambda i: -values[i])[:50]
    browser.execute_script("document.querySelector('#trials th[data-sort=\"value\"]').click();")
    wait_for(browser, "return document.querySelector('#trials th[data-sort=\"value\"]') !== null;")
    browser.execute_script("document.querySelector('#trials th[data-sort=\"value\"]').click();")
    _timed(browser, f"return document.querySelector('#trials tr.trial').dataset.number === '{best[0]}'", SORTED_S)
    assert _rows(browser) == best
    browser.execute_script("document.getElementById('next').click();")
    _timed(browser, "return document.getElementById('page').textContent.startsWith('51-100 of 100000')", PAGE_S)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "dashboard_100k.png"))  # type: ignore[attr-defined]
    assert severe_errors(browser) == []
