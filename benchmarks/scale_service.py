#!/usr/bin/env python
"""Suggest+complete through the HTTP service against Optuna's gRPC storage proxy, in one run.

What it measures, for 1, 8 and 32 clients, each a separate process (multiprocessing "spawn"),
on a SQLite file and on PostgreSQL:

* thrifty: ``thrifty serve`` (a real process, bearer tokens on) and clients that loop
  ``POST /studies/{name}/suggest`` then ``POST .../trials/{n}/complete`` over HTTP (the Python
  client's ``Client.request``: one keep-alive connection per client);
* Optuna: ``optuna.storages.run_grpc_proxy_server`` over the same kind of storage (a process of
  its own) and clients that loop ``study.ask()`` (with one ``suggest_float``: where Optuna
  samples) then ``study.tell(trial, value)`` through ``GrpcStorageProxy``.

Both: random search on one float, a trivial objective, one study per configuration in a fresh
database (a new SQLite file; ``CREATE DATABASE bench_...`` on PostgreSQL, dropped after). The
clients load the study, wait on a barrier, then each runs its share of the cycles. Reported:
throughput (cycles per second of wall clock, from the barrier to the last client's end) and the
latency of each request (suggest/ask and complete/tell pooled: p50, p99).

Two loads:

* **saturation** (1, 8, 32 clients): each client calls again the moment it is answered. The
  service is then the bottleneck by construction, and a request's latency is mostly its wait in
  the queue: about clients / request rate (Little's law), so at 32 clients this measures
  throughput a second time.
* **clients running trials** (32 clients; mean trial lengths :data:`TRIAL_S`): between its
  suggest and its complete a client works for the trial's length (uniform from half to one and
  a half times the mean; it starts as if in the middle of one). This is the latency a fleet of
  workers sees while the service also serves the others.

The issue's floors, at 32 clients on PostgreSQL: throughput at least Optuna's (saturation), and
p99 under 50 ms; the section reports the p99 of both loads, each with its verdict.

Usage::

    .venv/bin/python benchmarks/scale_service.py --cycles 384   # ~12 minutes; writes RESULTS.md and scale_service.json
    .venv/bin/python benchmarks/scale_service.py --quick    # a smoke run, nothing written
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _report import machine, md_table, source_fingerprint, versions, write_results

T = TypeVar("T")
SECTION = "## Scale: the HTTP service (benchmarks/scale_service.py)"
PG_ADMIN = os.environ.get("THRIFTY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
CLIENTS = (1, 8, 32)
#: The paced runs: this many clients, each running trials of these mean lengths (seconds) between
#: its suggest and its complete, for about PACED_S seconds of trials each.
PACED_CLIENTS = 32
TRIAL_S = (0.25, 1.0)
PACED_S = 8.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Any, proc: subprocess.Popen[Any], what: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            check()
            return
        except Exception:  # noqa: BLE001 - not up yet
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{what} did not start") from None
            time.sleep(0.2)


def new_database(kind: str, folder: str) -> tuple[str, Any]:
    """A fresh storage URL and a function that removes it."""
    if kind == "sqlite":
        path = os.path.join(folder, f"{uuid.uuid4().hex[:8]}.db")
        return f"sqlite:///{path}", lambda: None
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name

    def drop() -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    return url, drop


# -- clients (each its own process) ------------------------------------------------------------
def stagger(rng: random.Random, trial_s: float) -> None:
    """A paced client starts as if in the middle of a trial (a pause uniform from 0 to one and a
    half times ``trial_s``): a fleet in its steady state, not 32 clients calling in the same
    millisecond. Saturated clients (0) start at once."""
    if trial_s > 0:
        time.sleep(rng.uniform(0.0, 1.5) * trial_s)


def run_trial(rng: random.Random, trial_s: float) -> None:
    """A client's trial between its two calls: ``trial_s`` seconds on average (uniform from half to
    one and a half times it, so the clients do not call in lockstep); none at 0 (saturation)."""
    if trial_s > 0:
        time.sleep(rng.uniform(0.5, 1.5) * trial_s)


def cycles_of(suggest: Callable[[], T], complete: Callable[[T], None], index: int, cycles: int, trial_s: float,
              barrier: Any, out: Any) -> None:
    """One client's timed loop, the same for both systems: ``suggest()``, its trial, then
    ``complete(what suggest gave)``; each call's latency kept; sent to ``out`` with the loop's
    start and end."""
    rng = random.Random(index)
    latencies = []
    barrier.wait()
    started = time.perf_counter()
    stagger(rng, trial_s)
    for _ in range(cycles):
        t0 = time.perf_counter()
        handed = suggest()
        suggest_s = time.perf_counter() - t0
        run_trial(rng, trial_s)
        t1 = time.perf_counter()
        complete(handed)
        latencies += [suggest_s, time.perf_counter() - t1]
    out.put((started, time.perf_counter(), latencies))


def thrifty_client(base: str, token: str, trial_s: float, index: int, cycles: int, barrier: Any, out: Any) -> None:
    import thrifty as th

    api = th.Client(base, token, client_id=f"bench{index}")

    def suggest() -> dict[str, Any]:
        return api.request("POST", "/studies/bench/suggest", {"count": 1, "client_id": api.client_id})["trials"][0]

    def complete(trial: dict[str, Any]) -> None:
        api.request("POST", f"/studies/bench/trials/{trial['number']}/complete",
                    {"value": (trial["params"]["x"] - 0.5) ** 2})

    cycles_of(suggest, complete, index, cycles, trial_s, barrier, out)


def optuna_client(port: int, trial_s: float, index: int, cycles: int, barrier: Any, out: Any) -> None:
    import warnings

    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=port)
    study = optuna.load_study(study_name="bench", storage=storage, sampler=optuna.samplers.RandomSampler(seed=index))

    def ask() -> tuple[Any, float]:  # where Optuna samples: the ask and one suggest_float
        trial = study.ask()
        return trial, trial.suggest_float("x", 0.0, 1.0)

    def tell(asked: tuple[Any, float]) -> None:
        study.tell(asked[0], (asked[1] - 0.5) ** 2)

    cycles_of(ask, tell, index, cycles, trial_s, barrier, out)


def measure(target: Any, args: tuple[Any, ...], clients: int, total: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(clients), ctx.Queue()
    per = max(total // clients, 1)
    procs = [ctx.Process(target=target, args=(*args, i, per, barrier, out)) for i in range(clients)]
    for p in procs:
        p.start()
    results = [out.get(timeout=1800) for _ in procs]
    for p in procs:
        p.join()
    start, end = min(r[0] for r in results), max(r[1] for r in results)
    lat = sorted(x for r in results for x in r[2])
    return {"clients": clients, "trial_s": args[-1], "cycles": per * clients, "wall_s": end - start,
            "cycles_per_s": per * clients / (end - start), "p50_ms": 1000 * lat[len(lat) // 2],
            "p99_ms": 1000 * lat[min(int(len(lat) * 0.99), len(lat) - 1)]}


# -- servers --------------------------------------------------------------------------------------
def run_thrifty(url: str, clients: int, total: int, folder: str, trial_s: float = 0.0) -> dict[str, Any]:
    token = subprocess.run([sys.executable, "-m", "thrifty", "token", "create", "--storage", url, "--study", "bench",
                            "--role", "admin"], capture_output=True, text=True, check=True).stdout.strip()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "thrifty", "serve", "--storage", url, "--port", str(port)],
                            cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: urllib.request.urlopen(base + "/openapi.json", timeout=2).read(), proc, "thrifty serve")
        import thrifty as th

        th.Client(base, token).create_study({"x": {"type": "float", "low": 0.0, "high": 1.0}}, "min", name="bench",
                                            strategy="random", scheduler="none")
        return measure(thrifty_client, (base, token, trial_s), clients, total)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def run_optuna(url: str, clients: int, total: int, trial_s: float = 0.0) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(study_name="bench", storage=url, direction="minimize")
    port = free_port()
    code = ("import optuna; optuna.logging.set_verbosity(optuna.logging.WARNING); "
            f"optuna.storages.run_grpc_proxy_server(optuna.storages.RDBStorage({url!r}), host='127.0.0.1', port={port})")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        def up() -> None:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass

        wait_for(up, proc, "Optuna's gRPC proxy")
        return measure(optuna_client, (port, trial_s), clients, total)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cycles", type=int, default=960, help="suggest+complete cycles per configuration (default 960)")
    ap.add_argument("--quick", action="store_true", help="96 cycles per configuration; nothing written")
    args = ap.parse_args()
    total = 96 if args.quick else args.cycles
    rows = []
    fingerprint = source_fingerprint()
    load_before = os.getloadavg()
    # (clients, mean trial seconds, cycles): saturation with 1, 8 and 32 clients, then 32 clients
    # running trials (PACED_S seconds of trials per client).
    plan = [(clients, 0.0, total) for clients in CLIENTS]
    plan += [(PACED_CLIENTS, trial_s, PACED_CLIENTS * max(1, round((2 if args.quick else PACED_S) / trial_s)))
             for trial_s in TRIAL_S]
    with tempfile.TemporaryDirectory() as folder:
        for storage in ("postgresql", "sqlite"):
            for clients, trial_s, cycles in plan:
                for system in ("thrifty", "optuna"):
                    url, drop = new_database(storage, folder)
                    try:
                        if system == "thrifty":
                            row = run_thrifty(url, clients, cycles, folder, trial_s)
                        else:
                            row = run_optuna(url, clients, cycles, trial_s)
                    finally:
                        drop()
                    row.update(system=system, storage=storage)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    if args.quick:
        return 0
    command = "python benchmarks/scale_service.py" + (f" --cycles {args.cycles}" if args.cycles != 960 else "")
    data = {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "machine": machine(),
            "command": command, "versions": versions(["fastapi", "uvicorn", "httptools", "uvloop", "optuna", "grpcio", "psycopg"]),
            "thrifty_source_sha256_12": fingerprint, "rows": rows,
            "load_average_1min": {"start": round(load_before[0], 2), "end": round(os.getloadavg()[0], 2)},
            "peers": "Optuna's gRPC storage proxy (optuna.storages.run_grpc_proxy_server over RDBStorage), same run"}
    (HERE / "scale_service.json").write_text(json.dumps(data, indent=1) + "\n")
    write_results(HERE / "RESULTS.md", SECTION, section(data))
    return 0


def section(data: dict[str, Any]) -> str:
    rows = data["rows"]

    def find(system: str, storage: str, clients: int, trial_s: float = 0.0) -> dict[str, Any]:
        return next(r for r in rows if (r["system"], r["storage"], r["clients"], r.get("trial_s", 0.0))
                    == (system, storage, clients, trial_s))

    def cells(t: dict[str, Any], o: dict[str, Any]) -> list[str]:
        return [f"{t['cycles_per_s']:.0f}", f"{t['p50_ms']:.1f}", f"{t['p99_ms']:.1f}", f"{o['cycles_per_s']:.0f}",
                f"{o['p50_ms']:.1f}", f"{o['p99_ms']:.1f}"]

    saturated, paced = [], []
    for storage in ("postgresql", "sqlite"):
        for clients in CLIENTS:
            t, o = find("thrifty", storage, clients), find("optuna", storage, clients)
            saturated.append([storage, clients, *cells(t, o), f"{t['cycles_per_s'] / o['cycles_per_s']:.2f}x"])
        for trial_s in TRIAL_S:
            t, o = find("thrifty", storage, PACED_CLIENTS, trial_s), find("optuna", storage, PACED_CLIENTS, trial_s)
            paced.append([storage, f"{trial_s:g}", t["cycles"], *cells(t, o)])
    pg32 = find("thrifty", "postgresql", 32)
    ratio = pg32["cycles_per_s"] / find("optuna", "postgresql", 32)["cycles_per_s"]
    verdict = {True: "PASS", False: "FAIL"}
    hardest = find("thrifty", "postgresql", PACED_CLIENTS, TRIAL_S[0])
    lines = [SECTION, "",
             f"- Date: {data['date']}; machine: {data['machine']}; thrifty source {data['thrifty_source_sha256_12']}",
             f"- Command: `{data['command']}`; versions: "
             + ", ".join(f"{k} {v}" for k, v in data["versions"].items()),
             (f"- Peer, same run: {data['peers']}. Clients are processes, each with one keep-alive connection; "
              "every configuration in a fresh database."),
             "- Latency is per request (suggest and complete pooled); throughput is cycles per second of wall clock.",
             *([(f"- Load average (1 min) at the start and the end of the run: {data['load_average_1min']['start']} "
                 f"and {data['load_average_1min']['end']} on {os.cpu_count()} cores (other work on the machine shows "
                 "here).")]
               if "load_average_1min" in data else []),
             "",
             (f"Saturation: each client calls again as soon as it is answered (no work between calls), "
              f"{rows[0]['cycles']} suggest+complete cycles (ask+tell for Optuna) per configuration. Latency here "
              "is the queue: about clients / request rate."),
             "",
             *md_table(["storage", "clients", "thrifty cycles/s", "thrifty p50 ms", "thrifty p99 ms",
                        "Optuna gRPC cycles/s", "Optuna p50 ms", "Optuna p99 ms", "thrifty/Optuna"], saturated),
             "",
             *([(f"{PACED_CLIENTS} clients running trials: between its suggest and its complete each client works "
                 f"for the trial's length (uniform from half to one and a half times the mean, so the clients do "
                 f"not call in lockstep; each starts as if in the middle of a trial, after a pause uniform "
                 f"from 0 to 1.5 times the mean); about {PACED_S:g} s of trials per client.")]
               if paced else []),
             "",
             *md_table(["storage", "mean trial s", "cycles", "thrifty cycles/s", "thrifty p50 ms", "thrifty p99 ms",
                        "Optuna gRPC cycles/s", "Optuna p50 ms", "Optuna p99 ms"], paced),
             "",
             (f"Floors at 32 clients on PostgreSQL: throughput {ratio:.2f}x Optuna's: **{verdict[ratio >= 1]}**; "
              f"p99 under 50 ms with clients running {TRIAL_S[0]:g} s trials: {hardest['p99_ms']:.1f} ms: "
              f"**{verdict[hardest['p99_ms'] < 50]}**; p99 at saturation: {pg32['p99_ms']:.1f} ms: "
              f"**{verdict[pg32['p99_ms'] < 50]}**."),
             ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
