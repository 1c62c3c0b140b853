#!/usr/bin/env python
"""Ask+tell overhead of thrifty against Optuna, on one machine, in one run.

What it measures, for each library (thrifty, Optuna), storage (memory, SQLite file, PostgreSQL),
number of processes (1, 8) and number of trials (1,000, 10,000):

* latency of one ask+tell pair (p50, p99), measured around each pair: ``ask`` (Optuna: ``ask`` and
  the five ``suggest_*`` calls, which is where Optuna samples), a trivial objective, ``tell``;
* throughput: ask+tell pairs per second of wall clock, from a synchronized start (all worker
  processes wait on a barrier after loading the study) to the end of the last worker.

Random search on a 5-D space (three floats, one of them log-scaled, an int, a categorical). With
8 processes each process does N/8 pairs against one shared study, created first by the parent
and loaded by every worker (``thrifty.Study.load`` / ``optuna.load_study``). Memory storage is
single-process only. Every configuration gets a fresh database: a new SQLite file in a temporary
folder, or a new PostgreSQL database (``CREATE DATABASE bench_...``, dropped afterwards). Every
configuration runs in freshly started processes (multiprocessing "spawn").

A configuration that would run longer than ``--max-seconds-per-config`` is stopped at that cap and
its numbers are those of the pairs it completed, marked "(capped at K pairs)" in the table.

Also measured: ``import thrifty`` and ``import optuna`` in a fresh interpreter (wall time of
``python -c "import X"`` minus ``python -c "pass"``, median of 10, interleaved).

Usage::

    .venv/bin/python benchmarks/overhead.py --quick          # smoke run, 200 trials, ~2 minutes
    .venv/bin/python benchmarks/overhead.py                  # full run, writes benchmarks/RESULTS.md
                                                             # and benchmarks/overhead.json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import multiprocessing as mp
import os
import platform
import queue as _queue
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _report import write_results  # noqa: E402
SECTION = "## Overhead: ask+tell (benchmarks/overhead.py)"
FIRST_USE = "thrifty_first_use"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"

LIBS = ("thrifty", "optuna")
STORAGES = ("memory", "sqlite", "postgresql")


# ------------------------------------------------------------------------------------------------
# The workload: a 5-D space and a trivial objective, written once per library.
# ------------------------------------------------------------------------------------------------
def thrifty_space() -> Any:
    import thrifty as th

    return th.Space(
        {
            "lr": th.Float(1e-5, 1e-1, log=True),
            "x": th.Float(-5.0, 5.0),
            "y": th.Float(0.0, 1.0),
            "n": th.Int(1, 10),
            "c": th.Categorical(["a", "b", "c"]),
        }
    )


def objective_value(p: Any) -> float:
    return p["x"] * p["y"] + p["n"] * p["lr"] + (1.0 if p["c"] == "a" else 0.0)


def optuna_pair(study: Any) -> None:
    trial = study.ask()
    p = {
        "lr": trial.suggest_float("lr", 1e-5, 1e-1, log=True),
        "x": trial.suggest_float("x", -5.0, 5.0),
        "y": trial.suggest_float("y", 0.0, 1.0),
        "n": trial.suggest_int("n", 1, 10),
        "c": trial.suggest_categorical("c", ["a", "b", "c"]),
    }
    study.tell(trial, objective_value(p))


def thrifty_pair(study: Any) -> None:
    t = study.ask()
    study.tell(t, objective_value(t.params))


# ------------------------------------------------------------------------------------------------
# Storage set-up per configuration
# ------------------------------------------------------------------------------------------------
def pg_admin_connect(admin_url: str) -> Any:
    import psycopg

    return psycopg.connect(admin_url, autocommit=True, connect_timeout=5)


def pg_url_for(admin_url: str, db: str) -> str:
    base = admin_url.rsplit("/", 1)[0]
    return f"{base}/{db}"


class FreshStorage:
    """A fresh database for one configuration: a SQLite file in a temp dir or a new PG database."""

    def __init__(self, kind: str, lib: str, tag: str, workdir: Path, pg_admin_url: str) -> None:
        self.kind, self.lib = kind, lib
        self.tmpdir: str | None = None
        self.pg_db: str | None = None
        self.pg_admin_url = pg_admin_url
        if kind == "memory":
            self.url = "memory"
        elif kind == "sqlite":
            self.tmpdir = tempfile.mkdtemp(prefix=f"overhead-{lib}-", dir=workdir)
            self.url = f"sqlite:///{self.tmpdir}/study.db"
        elif kind == "postgresql":
            self.pg_db = f"bench_{lib}_{tag}_{os.getpid()}_{uuid.uuid4().hex[:6]}".lower()
            with pg_admin_connect(pg_admin_url) as conn:
                conn.execute(f'CREATE DATABASE "{self.pg_db}"')
            url = pg_url_for(pg_admin_url, self.pg_db)
            # thrifty takes postgresql:// (it picks psycopg 3); Optuna needs the driver spelled out.
            self.url = url if lib == "thrifty" else url.replace("postgresql://", "postgresql+psycopg://", 1)
        else:
            raise ValueError(kind)

    def cleanup(self) -> None:
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        if self.pg_db is not None:
            try:
                with pg_admin_connect(self.pg_admin_url) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_db}" WITH (FORCE)')
            except Exception as exc:  # noqa: BLE001
                print(f"  warning: could not drop database {self.pg_db}: {exc}", flush=True)


def _create_study_child(lib: str, url: str, name: str, results: Any) -> None:
    try:
        create_study(lib, url, name)
        results.put(None)
    except BaseException:  # noqa: BLE001
        results.put(traceback.format_exc())


def create_study_fresh(lib: str, url: str, name: str) -> None:
    """Create the shared study in a freshly spawned process, so that the study, its schema and the
    workers all use the library code as it is on disk now (the parent imported it long ago)."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    p = ctx.Process(target=_create_study_child, args=(lib, url, name, results))
    p.start()
    try:
        err = results.get(timeout=300)
    finally:
        p.join(timeout=60)
        if p.is_alive():
            p.terminate()
            p.join(timeout=10)
    if err is not None:
        raise RuntimeError("creating the study failed:\n" + err)


def create_study(lib: str, url: str, name: str) -> None:
    """Create the shared study (storage schema included)."""
    if lib == "thrifty":
        import thrifty as th

        study = th.Study.create(
            space=thrifty_space(), objective="max", name=name, storage=url, strategy="random", seed=0
        )
        study.close()
    else:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = optuna.storages.RDBStorage(url)
        optuna.create_study(
            storage=storage, study_name=name, direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0)
        )
        storage.engine.dispose()


# ------------------------------------------------------------------------------------------------
# Worker process
# ------------------------------------------------------------------------------------------------
def worker(cfg: dict[str, Any], rank: int, barrier: Any, results: Any) -> None:
    try:
        lib, url, name, n_pairs, cap_s = cfg["lib"], cfg["url"], cfg["name"], cfg["pairs"][rank], cfg["cap_s"]
        if lib == "thrifty":
            import thrifty as th

            if url == "memory":
                study = th.Study.create(
                    space=thrifty_space(), objective="max", name=name, storage="memory", strategy="random", seed=0
                )
            else:
                study = th.Study.load(name, storage=url)
            pair = thrifty_pair
        else:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            sampler = optuna.samplers.RandomSampler(seed=rank)  # rank 0 (single process): seed=0
            if url == "memory":
                study = optuna.create_study(direction="maximize", sampler=sampler)
            else:
                study = optuna.load_study(study_name=name, storage=url, sampler=sampler)
            pair = optuna_pair
        pc = time.perf_counter  # CLOCK_MONOTONIC on Linux: comparable between processes
        lats: list[float] = []
        append = lats.append
        barrier.wait(timeout=600)
        start = pc()
        deadline = start + cap_s
        t_prev = start
        for _ in range(n_pairs):
            pair(study)
            t = pc()
            append(t - t_prev)
            t_prev = t
            if t >= deadline:
                break
        end = t_prev
        if lib == "thrifty":
            study.close()
        results.put({"rank": rank, "start": start, "end": end, "lats": lats, "target": n_pairs})
    except BaseException:  # noqa: BLE001 - report everything to the parent
        try:
            barrier.abort()
        except Exception:  # noqa: BLE001
            pass
        results.put({"rank": rank, "error": traceback.format_exc()})


def run_config(
    lib: str, storage: str, procs: int, trials: int, cap_s: float, workdir: Path, pg_admin_url: str
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    tag = f"{procs}p_{trials}"
    store = FreshStorage(storage, lib, tag, workdir, pg_admin_url)
    name = f"overhead-{lib}-{storage}-{tag}"
    procs_list: list[Any] = []
    try:
        if storage != "memory":
            create_study_fresh(lib, store.url, name)
        base, extra = divmod(trials, procs)
        pairs = [base + (1 if r < extra else 0) for r in range(procs)]
        cfg = {"lib": lib, "url": store.url, "name": name, "pairs": pairs, "cap_s": cap_s}
        barrier = ctx.Barrier(procs)
        results = ctx.Queue()
        procs_list = [ctx.Process(target=worker, args=(cfg, r, barrier, results)) for r in range(procs)]
        for p in procs_list:
            p.start()
        got: list[dict[str, Any]] = []
        hard_deadline = time.monotonic() + cap_s + 900
        while len(got) < procs:
            try:
                got.append(results.get(timeout=1.0))
            except _queue.Empty:
                dead = [p for p in procs_list if p.exitcode not in (None, 0)]
                if dead or time.monotonic() > hard_deadline:
                    raise RuntimeError(
                        f"workers failed: exit codes {[p.exitcode for p in procs_list]}"
                        if dead else "timed out waiting for the workers"
                    ) from None
        for p in procs_list:
            p.join(timeout=60)
        errors = [g["error"] for g in got if "error" in g]
        if errors:
            raise RuntimeError("worker error:\n" + errors[0])
        return summarize(lib, storage, procs, trials, got)
    finally:
        for p in procs_list:
            if p.is_alive():
                p.terminate()
                p.join(timeout=10)
        store.cleanup()


def percentile(sorted_vals: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_vals:
        return float("nan")
    k = (len(sorted_vals) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)


def summarize(lib: str, storage: str, procs: int, trials: int, got: list[dict[str, Any]]) -> dict[str, Any]:
    got = sorted(got, key=lambda g: g["rank"])
    all_lats = [x for g in got for x in g["lats"]]
    completed = len(all_lats)
    wall = max(g["end"] for g in got) - min(g["start"] for g in got)
    s = sorted(all_lats)
    # Mean latency per tenth of each worker's sequence of pairs (shows growth with study size).
    deciles = []
    for d in range(10):
        chunk = [x for g in got for x in g["lats"][len(g["lats"]) * d // 10: len(g["lats"]) * (d + 1) // 10]]
        deciles.append(1e3 * statistics.fmean(chunk) if chunk else None)
    return {
        "library": lib,
        "storage": storage,
        "processes": procs,
        "trials": trials,
        "completed_pairs": completed,
        "capped": completed < trials,
        "wall_s": wall,
        "throughput_pairs_per_s": completed / wall if wall > 0 else float("nan"),
        "p50_ms": 1e3 * percentile(s, 50),
        "p90_ms": 1e3 * percentile(s, 90),
        "p99_ms": 1e3 * percentile(s, 99),
        "p999_ms": 1e3 * percentile(s, 99.9),
        "max_ms": 1e3 * s[-1] if s else None,
        "mean_ms": 1e3 * statistics.fmean(s) if s else None,
        "mean_ms_by_tenth": deciles,
        "per_worker_pairs": [len(g["lats"]) for g in got],
    }


# ------------------------------------------------------------------------------------------------
# Import time
# ------------------------------------------------------------------------------------------------
def import_times(modules: list[str], repeats: int) -> dict[str, Any]:
    py = sys.executable
    env = dict(os.environ)
    env.pop("PYTHONPROFILEIMPORTTIME", None)

    def once(code: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([py, "-c", code], check=True, env=env, cwd=str(ROOT))
        return time.perf_counter() - t0

    codes = {"pass": "pass", **{m: f"import {m}" for m in modules}}
    if "thrifty" in modules:
        # thrifty loads lazily: also time what a first study pulls in (SQLAlchemy, numpy, strategies).
        codes[FIRST_USE] = "import thrifty; thrifty.Study; import thrifty.storage.sql, thrifty.strategies.random"
    for code in codes.values():  # warm the file cache and the bytecode caches
        once(code)
    samples: dict[str, list[float]] = {k: [] for k in codes}
    for _ in range(repeats):
        for k, code in codes.items():
            samples[k].append(once(code))
    base = statistics.median(samples["pass"])
    out: dict[str, Any] = {"python_startup_ms": 1e3 * base, "repeats": repeats}
    if FIRST_USE in samples:
        out[FIRST_USE] = {"median_ms": 1e3 * (statistics.median(samples[FIRST_USE]) - base),
                          "samples_ms": [1e3 * (x - base) for x in samples[FIRST_USE]],
                          "code": codes[FIRST_USE]}
    for m in modules:
        # -X importtime: the module's own cumulative import time, as a cross-check.
        proc = subprocess.run([py, "-X", "importtime", "-c", f"import {m}"], capture_output=True, text=True,
                              env=env, cwd=str(ROOT), check=True)
        cum = None
        for line in proc.stderr.splitlines():
            parts = line.split("|")
            if len(parts) == 3 and parts[2].rstrip() == f" {m}":  # the top-level (not nested) entry
                try:
                    cum = int(parts[1]) / 1e3
                except ValueError:
                    pass
        out[m] = {
            "median_ms": 1e3 * (statistics.median(samples[m]) - base),
            "samples_ms": [1e3 * (x - base) for x in samples[m]],
            "importtime_cumulative_ms": cum,
        }
    return out


# ------------------------------------------------------------------------------------------------
# Machine description
# ------------------------------------------------------------------------------------------------
def machine_info(pg_admin_url: str, have_pg: bool) -> dict[str, Any]:
    import importlib.metadata as md
    import sqlite3

    def ver(pkg: str) -> str:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return "not installed"

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        mem_gib = float("nan")
    pg_version = "unavailable"
    if have_pg:
        with pg_admin_connect(pg_admin_url) as conn:
            pg_version = conn.execute("SHOW server_version").fetchone()[0]
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "memory_gib": round(mem_gib, 1),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "thrifty": ver("thrifty"),
        "optuna": ver("optuna"),
        "sqlalchemy": ver("SQLAlchemy"),
        "psycopg": ver("psycopg"),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg_version,
    }


def source_fingerprint() -> str:
    """A hash of thrifty's source files: the run notes if they changed while it ran."""
    import hashlib

    try:
        import importlib.util

        spec = importlib.util.find_spec("thrifty")
        pkg = Path(spec.origin).parent if spec and spec.origin else None
    except Exception:  # noqa: BLE001
        pkg = None
    if pkg is None:
        return "unknown"
    h = hashlib.sha256()
    for f in sorted(pkg.rglob("*.py")):
        h.update(str(f.relative_to(pkg)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def pg_available(admin_url: str) -> bool:
    try:
        with pg_admin_connect(admin_url) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception as exc:  # noqa: BLE001
        print(f"PostgreSQL at {admin_url} is not reachable ({exc}); skipping PostgreSQL configurations", flush=True)
        return False


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------
def fmt_int(n: int) -> str:
    return f"{n:,}"


def fmt_ms(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 100 else f"{x:.0f}"


def fmt_tp(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def key_of(r: dict[str, Any]) -> tuple[str, int, int]:
    return (r["storage"], r["processes"], r["trials"])


def find(results: list[dict[str, Any]], lib: str, storage: str, procs: int, trials: int) -> dict[str, Any] | None:
    for r in results:
        if (r["library"], r["storage"], r["processes"], r["trials"]) == (lib, storage, procs, trials) and "error" not in r:
            return r
    return None


def floors(results: list[dict[str, Any]], imports: dict[str, Any], big: int) -> list[tuple[str, str, str]]:
    out = []
    th, op = find(results, "thrifty", "sqlite", 1, big), find(results, "optuna", "sqlite", 1, big)
    label = f"on SQLite at {fmt_int(big)} trials (single process), thrifty throughput >= 5x Optuna's"
    if th and op:
        ratio = th["throughput_pairs_per_s"] / op["throughput_pairs_per_s"]
        note = f"{ratio:.1f}x ({fmt_tp(th['throughput_pairs_per_s'])} vs {fmt_tp(op['throughput_pairs_per_s'])} pairs/s"
        if op["capped"]:
            note += f"; Optuna capped at {fmt_int(op['completed_pairs'])} pairs, i.e. measured on a smaller study, which favours Optuna"
        note += ")"
        out.append((label, "PASS" if ratio >= 5 else "FAIL", note))
    else:
        out.append((label, "NOT MEASURED", "configuration missing or failed"))
    label = f"thrifty p99 ask+tell on SQLite at {fmt_int(big)} trials < 10 ms"
    if th:
        out.append((label, "PASS" if th["p99_ms"] < 10 else "FAIL", f"p99 = {fmt_ms(th['p99_ms'])} ms"))
    else:
        out.append((label, "NOT MEASURED", "configuration missing or failed"))
    label = "import thrifty < 150 ms"
    if "thrifty" in imports:
        v = imports["thrifty"]["median_ms"]
        out.append((label, "PASS" if v < 150 else "FAIL", f"{v:.0f} ms (median of {imports['repeats']}, fresh interpreter, startup subtracted)"))
    else:
        out.append((label, "NOT MEASURED", ""))
    return out


def render(data: dict[str, Any]) -> str:
    m, results, imports = data["machine"], data["results"], data["imports"]
    big = max(data["args"]["trials"])
    lines = [SECTION, ""]
    lines.append(f"- Date: {data['date']}")
    lines.append(
        f"- Machine: {m['platform']}; {m['cpu']}; os.cpu_count() = {m['cpu_count']}; {m['memory_gib']} GiB memory"
    )
    lines.append(
        f"- Software: Python {m['python']}; thrifty {m['thrifty']}; Optuna {m['optuna']}; SQLAlchemy {m['sqlalchemy']}; "
        f"psycopg {m['psycopg']}; SQLite {m['sqlite']}; PostgreSQL {m['postgresql']}"
    )
    lines.append(f"- Command: `{data['command']}`")
    lines.append(f"- Wall time of the whole run: {data['total_s'] / 60:.1f} min")
    fp = data.get("thrifty_source_sha256_12", {})
    if fp:
        same = fp["start"] == fp["end"]
        lines.append(
            f"- thrifty source (sha256 of src/thrifty/**/*.py, 12 hex): {fp['start']}"
            + ("" if same else f" at the start, {fp['end']} at the end: the source changed during the run "
               "(each row runs in fresh processes, so a row uses the code as it was when the row started)")
        )
    loads = [r["loadavg_1min_at_start"] for r in results if r.get("loadavg_1min_at_start") is not None]
    if loads:
        lines.append(
            f"- 1-minute load average when each row started: {min(loads):.1f} to {max(loads):.1f} "
            f"on {m['cpu_count']} cores (anything else running on the machine shows here)"
        )
    lines.append("")
    lines.append(
        "Random search on a 5-D space (floats `lr` in [1e-5, 0.1] log-scaled, `x` in [-5, 5], `y` in [0, 1]; "
        "int `n` in [1, 10]; categorical `c` of 3), trivial objective. One pair = `ask` (Optuna: `ask` plus the "
        "five `suggest_*` calls, where Optuna samples) + objective + `tell`, timed around each pair with "
        "`time.perf_counter`. Throughput = pairs completed / wall time from a synchronized start (every worker "
        "loads the study, then waits on a barrier) to the end of the last worker. With 8 processes each does "
        "N/8 pairs on one shared study and the percentiles are over all pairs. Fresh processes and a fresh "
        "database (SQLite file in a temp dir / `CREATE DATABASE`) per row; SQLite in WAL mode for thrifty, "
        "Optuna's RDB storage defaults; Optuna `RandomSampler(seed=0)` (seed=rank in the 8-process rows), "
        "thrifty `strategy=\"random\", seed=0`. "
        f"A row is stopped after {data['args']['max_seconds_per_config']:g} s and then reports the pairs it "
        "completed (marked \"capped\")."
    )
    lines.append("")
    lines.append(
        f"**The machine has {m['cpu_count']} cores: the 8-process rows run 8 workers (plus, for PostgreSQL, "
        "the server's backends) on them, so they measure contention, not parallel speed-up.**"
    )
    lines.append("")
    lines.append("| library | storage | processes | trials | p50 ms | p99 ms | throughput pairs/s | thrifty/optuna throughput |")
    lines.append("|---|---|---:|---|---:|---:|---:|---:|")
    order = {s: i for i, s in enumerate(STORAGES)}
    keys = sorted({key_of(r) for r in results}, key=lambda k: (order[k[0]], k[1], k[2]))
    for k in keys:
        th = find(results, "thrifty", *k)
        op = find(results, "optuna", *k)
        ratio = ""
        if th and op:
            ratio = f"{th['throughput_pairs_per_s'] / op['throughput_pairs_per_s']:.1f}x"
        for lib in LIBS:
            rows = [r for r in results if (r["library"], *key_of(r)) == (lib, *k)]
            if not rows:
                continue
            r = rows[0]
            trials_cell = fmt_int(k[2])
            if "error" in r:
                lines.append(f"| {lib} | {k[0]} | {k[1]} | {trials_cell} | error | error | error | |")
                continue
            if r["capped"]:
                trials_cell += f" (capped at {fmt_int(r['completed_pairs'])} pairs)"
            lines.append(
                f"| {lib} | {k[0]} | {k[1]} | {trials_cell} | {fmt_ms(r['p50_ms'])} | {fmt_ms(r['p99_ms'])} | "
                f"{fmt_tp(r['throughput_pairs_per_s'])} | {ratio if lib == 'thrifty' else ''} |"
            )
    lines.append("")
    errs = [r for r in results if "error" in r]
    if errs:
        lines.append("Errors:")
        for r in errs:
            first = r["error"].strip().splitlines()[-1] if r["error"].strip() else "?"
            lines.append(f"- {r['library']} / {r['storage']} / {r['processes']} proc / {r['trials']}: `{first}`")
        lines.append("")
    if imports:
        lines.append("Import time in a fresh interpreter (wall time of `python -c \"import X\"` minus `python -c \"pass\"`, "
                     f"median of {imports['repeats']}; `-X importtime` cumulative in brackets; "
                     f"interpreter start-up {imports['python_startup_ms']:.0f} ms):")
        lines.append("")
        for mod in ("thrifty", "optuna"):
            if mod in imports:
                cum = imports[mod]["importtime_cumulative_ms"]
                cum_s = f" ({cum:.0f} ms)" if cum is not None else ""
                lines.append(f"- `import {mod}`: {imports[mod]['median_ms']:.0f} ms{cum_s}")
            if mod == "thrifty" and FIRST_USE in imports:
                fu = imports[FIRST_USE]
                lines.append(f"- `{fu['code']}` (thrifty imports lazily; this is what a first study loads, "
                             f"for information): {fu['median_ms']:.0f} ms")
        lines.append("")
    lines.append("Floors (from the project's issue):")
    lines.append("")
    for label, verdict, note in floors(results, imports, big):
        lines.append(f"- {verdict}: {label}: {note}")
    lines.append("")
    lines.append("Raw numbers (more percentiles, mean latency per tenth of the run, pairs per worker): "
                 "`benchmarks/overhead.json`.")
    lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 200 trials, 60 s cap, 5 import repeats; "
                    "writes under benchmarks/_work/ unless --out/--json are given")
    ap.add_argument("--trials", type=int, nargs="+", default=None, help="study sizes (default 1000 10000)")
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 8], help="process counts (default 1 8)")
    ap.add_argument("--libs", nargs="+", choices=LIBS, default=list(LIBS))
    ap.add_argument("--storages", nargs="+", choices=STORAGES, default=list(STORAGES))
    ap.add_argument("--max-seconds-per-config", type=float, default=None,
                    help="stop a configuration after this many seconds and report the pairs completed (default 300)")
    ap.add_argument("--import-repeats", type=int, default=None, help="fresh-interpreter imports per module (default 10)")
    ap.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="PostgreSQL database to connect to for CREATE/DROP DATABASE")
    ap.add_argument("--out", type=Path, default=None, help="markdown file to write the section into "
                    "(default benchmarks/RESULTS.md)")
    ap.add_argument("--json", type=Path, default=None, help="raw numbers (default benchmarks/overhead.json)")
    args = ap.parse_args(argv)

    trials = args.trials or ([200] if args.quick else [1000, 10000])
    cap = args.max_seconds_per_config or (60.0 if args.quick else 300.0)
    repeats = args.import_repeats or (5 if args.quick else 10)
    work = ROOT / "benchmarks" / "_work"
    work.mkdir(parents=True, exist_ok=True)
    out = args.out or (work / "RESULTS.quick.md" if args.quick else ROOT / "benchmarks" / "RESULTS.md")
    js = args.json or (work / "overhead.quick.json" if args.quick else ROOT / "benchmarks" / "overhead.json")

    try:
        py = os.path.relpath(sys.executable, os.getcwd())
        if len(py) > len(sys.executable):
            py = sys.executable
    except ValueError:
        py = sys.executable
    try:
        script = os.path.relpath(os.path.abspath(sys.argv[0]), os.getcwd())
    except ValueError:
        script = sys.argv[0]
    command = shlex.join([py, script, *(sys.argv[1:] if argv is None else argv)])

    t_all = time.perf_counter()
    fp_start = source_fingerprint()
    have_pg = "postgresql" in args.storages and pg_available(args.pg_admin_url)
    storages = [s for s in args.storages if s != "postgresql" or have_pg]

    print("import times ...", flush=True)
    imports = import_times([m for m in ("thrifty", "optuna") if m in args.libs], repeats)
    for mod in ("thrifty", "optuna"):
        if mod in imports:
            print(f"  import {mod}: {imports[mod]['median_ms']:.0f} ms", flush=True)

    configs = []
    for storage in storages:
        for procs in args.procs:
            if storage == "memory" and procs != 1:
                continue
            for n in trials:
                for lib in args.libs:
                    configs.append((lib, storage, procs, n))

    results: list[dict[str, Any]] = []
    for i, (lib, storage, procs, n) in enumerate(configs, 1):
        print(f"[{i}/{len(configs)}] {lib:7s} {storage:10s} procs={procs} trials={n} ...", flush=True)
        t0 = time.perf_counter()
        fp_row = source_fingerprint()
        load_at_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        try:
            r = run_config(lib, storage, procs, n, cap, work, args.pg_admin_url)
        except Exception as exc:  # noqa: BLE001 - report, and go on with the other rows
            r = {"library": lib, "storage": storage, "processes": procs, "trials": n, "error": str(exc)}
            print(f"   ERROR: {exc}", flush=True)
        else:
            cap_note = f" (capped at {r['completed_pairs']} pairs)" if r["capped"] else ""
            print(
                f"   p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  {r['throughput_pairs_per_s']:.1f} pairs/s"
                f"{cap_note}  [{time.perf_counter() - t0:.0f} s]",
                flush=True,
            )
        r["thrifty_source_sha256_12"] = fp_row
        r["loadavg_1min_at_start"] = load_at_start
        results.append(r)

    data = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command,
        "machine": machine_info(args.pg_admin_url, have_pg),
        "args": {"trials": trials, "procs": args.procs, "libs": args.libs, "storages": storages,
                 "max_seconds_per_config": cap, "import_repeats": repeats, "quick": args.quick},
        "imports": imports,
        "results": results,
        "total_s": time.perf_counter() - t_all,
        "thrifty_source_sha256_12": {"start": fp_start, "end": source_fingerprint()},
    }
    data["floors"] = [
        {"floor": label, "verdict": verdict, "detail": note} for label, verdict, note in floors(results, imports, max(trials))
    ]
    js.parent.mkdir(parents=True, exist_ok=True)
    js.write_text(json.dumps(data, indent=1) + "\n")
    section = render(data)
    write_results(out, SECTION, section)
    print(f"\nwrote {out} and {js}\n", flush=True)
    print(section, flush=True)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
