"""Helpers the benchmark scripts share for their reports: library versions, a fingerprint of
thrifty's source, and replacing one section of benchmarks/RESULTS.md."""

from __future__ import annotations

import hashlib
import math
import os
import platform
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def versions(dists: Sequence[str]) -> dict[str, str]:
    """Installed version of each distribution (``"not installed"`` if absent), plus Python's."""
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for dist in dists:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def machine() -> str:
    """Architecture, cores, memory, OS and Python, in one line."""
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
        mem = f", {kb / 2**20:.0f} GiB"
    except OSError:
        pass
    return f"{platform.machine()}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def source_fingerprint() -> str:
    """12 hex digits of the sha256 of src/thrifty/**/*.py (paths and contents)."""
    h = hashlib.sha256()
    for p in sorted((ROOT / "src" / "thrifty").rglob("*.py")):
        h.update(str(p.relative_to(ROOT)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def run_tasks(fn: Callable[[Any], Any], tasks: Sequence[Any], jobs: int) -> list[Any]:
    """``[fn(t) for t in tasks]``, in ``jobs`` forked worker processes when ``jobs > 1`` (one task
    at a time each, results in task order)."""
    if jobs <= 1:
        return [fn(t) for t in tasks]
    import multiprocessing as mp

    with mp.get_context("fork").Pool(jobs) as pool:
        return pool.map(fn, tasks, chunksize=1)


def md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A Markdown table: the first column left-aligned, the others right-aligned."""
    out = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def write_results(path: Path, head: str, section: str) -> None:
    """Replace the section whose heading line is exactly ``head`` (up to the next ``## `` heading)
    or append it. The whole line must match: a heading that extends another (a tagged run's)
    is a different section."""
    text = path.read_text() if path.exists() else "# thrifty benchmark results\n"
    line = head.rstrip("\n") + "\n"
    if line in text:
        start = text.index(line)
        nxt = text.find("\n## ", start + len(line) - 1)
        text = text[:start] + section.rstrip("\n") + "\n" + (text[nxt:] if nxt != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n")


def pct(x: float) -> str:
    """A regret as a percentage (``—`` for inf: nothing found yet)."""
    return "—" if not math.isfinite(x) else f"{100 * x:.2f}%"


def tail_summary(recs: Sequence[dict], regret_at: Callable[[dict, float], float], report_at: Sequence[int],
                 budget: float) -> dict:
    """Issue 13's tail over runs: the share of runs within 1% and 0.5% regret at ``budget`` units,
    and the median, 90th percentile (nearest rank: "nine runs in ten end within it") and worst
    regret at each mark of ``report_at``. ``regret_at(rec, units)``: a run's regret then (inf
    before its first find)."""
    import numpy as np

    finals = np.array([regret_at(r, budget) for r in recs])
    tail = {}
    for u in report_at:
        col = np.sort([regret_at(r, u) for r in recs])
        tail[u] = {"median": float(np.median(col)), "p90": float(col[max(math.ceil(0.9 * len(col)) - 1, 0)]),
                   "worst": float(col[-1])}
    return {"runs": len(recs), "share_1pct": float(np.mean(finals <= 0.01)),
            "share_05pct": float(np.mean(finals <= 0.005)), "tail_at": tail}


def floor_verdict(name: str, summ: dict[str, dict], peers: Sequence[str], labels: dict[str, str],
                  ours: str = "thrifty-defaults", at: int = 50) -> str | None:
    """Issue 13's floor for a benchmark family beside LCBench: ``ours`` beats the best peer of the
    run on the share reaching 1% and on the 90th-percentile regret at ``at`` units."""
    peers = [k for k in peers if k in summ]
    if ours not in summ or not peers:
        return None
    a = summ[ours]
    share_peer = max(peers, key=lambda k: summ[k]["share_1pct"])
    p90_peer = min(peers, key=lambda k: summ[k]["tail_at"][at]["p90"])
    ok_share = a["share_1pct"] > summ[share_peer]["share_1pct"] or a["share_1pct"] == 1.0
    ok_p90 = a["tail_at"][at]["p90"] < summ[p90_peer]["tail_at"][at]["p90"] or a["tail_at"][at]["p90"] <= 0.0
    return (f"Floor (issue 13), {name}: reach 1% {100 * a['share_1pct']:.0f}% vs {labels[share_peer]} "
            f"{100 * summ[share_peer]['share_1pct']:.0f}% ({'ok' if ok_share else 'no'}); p90 regret at {at} units "
            f"{pct(a['tail_at'][at]['p90'])} vs {labels[p90_peer]} {pct(summ[p90_peer]['tail_at'][at]['p90'])} "
            f"({'ok' if ok_p90 else 'no'}): **{'PASS' if ok_share and ok_p90 else 'FAIL'}**.")
