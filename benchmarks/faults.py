"""Fault-injection benchmark (issue 11): hundreds of faults into real multi-process runs, and what
they cost: trials lost, duplicated, left RUNNING, orphan processes, ledger error.

Run from the repository root (as root, so that a tmpfs can be mounted for the full disk):

    .venv/bin/python benchmarks/faults.py                               # both storages, 200 faults each
    .venv/bin/python benchmarks/faults.py --storage sqlite --faults 50  # one storage, fewer faults

Per storage, rounds until ``--faults`` faults have been injected. A round is a fresh study (random
strategy, a budget of 400 trials, ``max_retries=5``, ``heartbeat_grace_s=2``, 10 configurations
enqueued first) run by ``Study.optimize(n_workers=8)`` in a driver subprocess; the harness
(``tests/helpers/chaos.py``, the same as ``tests/test_chaos.py``'s) injects 2 to 6 faults at random
gaps of 0.2-0.8 s into each driver and then SIGTERMs it, and starts the next driver on the same
study (the study resumes), until the round has its share of faults or the budget is used up; a
last driver without faults runs the rest of the budget. Then the invariants, checked from the
database and from the objectives' side log: see :func:`chaos.check`.

Faults: SIGKILL of a random worker process; SIGTERM of the driver (the run's parent);
PostgreSQL only: ``pg_terminate_backend`` of every other session on the study's database; SQLite
only: a full disk (a small tmpfs filled to its last byte for 0.3-1.5 s, or, where no tmpfs can be
mounted, a 1-byte ``RLIMIT_FSIZE`` on every process of the run for that long). SQLite has no
server connection to kill, and PostgreSQL's disk is the server's: those cells are n/a.

Faults have no peer comparison here: no peer library publishes such a run, and a peer's loss
counts would depend on its own recovery features rather than on the same harness.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "helpers"))

import _postgres  # noqa: E402
import chaos  # noqa: E402
from _report import machine, md_table, source_fingerprint, versions, write_results  # noqa: E402

SECTION = "## Faults: chaos against real runs, SQLite and PostgreSQL (benchmarks/faults.py)"
N_TRIALS = 400
STEP_S = 0.1
FAULTS_PER_ROUND = 30
KINDS = {
    "sqlite": {"sigkill_worker": 3.0, "disk_full": 1.0},
    "postgresql": {"sigkill_worker": 3.0, "kill_connections": 2.0},
}
#: Report fields added up over rounds.
SUMMED = ("drivers", "trials", "completed", "returned", "lost", "interrupted_after_return", "not_in_db",
          "duplicated", "running_left", "running_at_exit", "running_after_sigterm", "orphans", "pending_left",
          "unresolved", "tracebacks", "unstated")


def one_round(kind: str, url: str, seed: int, want: int, disk: chaos.Disk | None, workdir: Path) -> dict[str, Any]:
    started = time.time()
    run = chaos.Run(chaos.Config(url=url, name=f"faults{seed}", n_trials=N_TRIALS, n_enqueued=10, seed=seed,
                                 step_s=STEP_S),
                    workdir, disk)
    try:
        run.start_reader()
        while sum(run.faults.values()) < want:
            d = run.start_driver()
            if run.wait_for_trials(d, 4):
                run.chaos(d, n_faults=min(run.rng.randint(2, 6), max(0, want - sum(run.faults.values()) - 1)),
                          kinds=KINDS[kind])
            run.wait_driver(d)
            if d.exit_code == 0:
                break  # the budget is used up
        run.finish()
    finally:
        run.close()
    report = chaos.check(run, final=True).as_dict()
    report["seed"] = seed
    report["seconds"] = time.time() - started
    report["errors_ending_a_driver"] = dict(Counter(
        (d.err.strip().splitlines() or ["?"])[-1].rsplit(": ", 1)[-1][:80] for d in run.drivers if d.exit_code == 1))
    print(f"  round seed={seed}: faults {report['faults']}, drivers {report['drivers']}, trials {report['trials']}, "
          f"interrupted after return {report['interrupted_after_return']}, {report['seconds']:.0f} s"
          + (f"; PROBLEMS {report['problems']}" if report["problems"] else "; no loss"), flush=True)
    return report


def reader_errors(report: dict[str, Any]) -> Counter:
    """The concurrent reader's errors of a round, by how it read and the message."""
    return Counter(report["reader"].get("errors", {}))


def bench_storage(kind: str, n_faults: int, seed: int, admin_url: str) -> dict[str, Any]:
    workdir = chaos.scratch_dir("thrifty-faults-")
    disk = chaos.Disk(workdir) if kind == "sqlite" else None
    rounds: list[dict[str, Any]] = []
    started = time.time()
    try:
        r = 0
        while sum(sum(x["faults"].values()) for x in rounds) < n_faults:
            left = n_faults - sum(sum(x["faults"].values()) for x in rounds)
            want = min(FAULTS_PER_ROUND, left)
            if kind == "sqlite":
                assert disk is not None
                url = f"sqlite:///{disk.dir}/round{r}.db"
                rounds.append(one_round(kind, url, seed + r, want, disk, workdir))
                for f in disk.dir.glob(f"round{r}.db*"):
                    f.unlink()
            else:
                url = _postgres.create_database(admin_url)
                try:
                    rounds.append(one_round(kind, url, seed + r, want, None, workdir))
                finally:
                    _postgres.drop_database(url)
            r += 1
    finally:
        if disk is not None:
            disk.release()
        shutil.rmtree(workdir, ignore_errors=True)
    total: dict[str, Any] = {k: sum(x[k] for x in rounds) for k in SUMMED}
    faults: Counter = Counter()
    for x in rounds:
        faults.update(x["faults"])
    total.update(
        storage=kind, rounds=len(rounds), faults=dict(faults), n_faults=sum(faults.values()),
        ledger_error_usd=max(x["ledger_error_usd"] for x in rounds),
        numbers_not_dense=sum(not x["numbers_dense"] for x in rounds),
        reader_reads=sum(x["reader"].get("reads", 0) for x in rounds),
        reader_errors=sum(sum(x["reader"].get("errors", {}).values()) for x in rounds),
        reader_error_kinds=dict(sum((reader_errors(x) for x in rounds), Counter())),
        exit_codes=dict(sum((Counter(x["exit_codes"]) for x in rounds), Counter())),
        errors_ending_a_driver=dict(sum((Counter(x["errors_ending_a_driver"]) for x in rounds), Counter())),
        problems=[p for x in rounds for p in x["problems"]], seconds=time.time() - started,
        disk=disk.describe() if disk is not None else None,
    )
    return {"total": total, "rounds": rounds}


def pg_server_version(admin_url: str) -> str:
    import psycopg

    with psycopg.connect(admin_url, connect_timeout=5) as con:
        return str(con.execute("SHOW server_version").fetchone()[0])


LOSS_COLUMNS = ("lost", "not_in_db", "duplicated", "running_left", "orphans", "ledger_error_usd", "numbers_not_dense",
                "tracebacks", "unstated")


def render(data: dict[str, Any]) -> str:
    res = data["results"]
    fault_cells = {
        "sigkill_worker": "SIGKILL of a worker", "sigterm_driver": "SIGTERM of the parent",
        "kill_connections": "killed DB connections", "disk_full": "full disk",
    }
    lines = [SECTION, "",
             f"- Date: {data['date']}",
             f"- Machine: {data['machine']}",
             f"- Software: {data['software']}",
             f"- Command: `{data['command']}` (at `nice -n 10`; other work shared the machine's cores)",
             f"- Wall time: {data['seconds'] / 60:.1f} min; thrifty source (sha256 of src/thrifty/**/*.py, 12 hex): "
             f"{data['source']}",
             "- Peers: none. No peer library publishes such a run, and a peer's counts would measure its own "
             "recovery features, not the same harness; this section has no peer column.",
             "",
             "What one round is, and the invariants: the script's docstring and `tests/helpers/chaos.py` "
             "(shared with `tests/test_chaos.py`). Each trial's objective reports 3 steps with dyadic "
             "`cost_usd` (exact sums) and writes `start`/`returned` lines to a pipe the harness reads.",
             ""]
    lines += md_table(
        ["storage", "faults injected", "trials", "completed", "completed trials lost", "interrupted after return",
         "duplicated", "left RUNNING", "orphan processes left", "ledger error $"],
        [[t["storage"], t["n_faults"], f"{t['trials']:,}", f"{t['completed']:,}", t["lost"],
          t["interrupted_after_return"], t["duplicated"], t["running_left"], t["orphans"],
          f"{t['ledger_error_usd']:.6g}"] for t in res])
    lines += ["", "Faults by kind, and more counts:", ""]
    rows = []
    for t in res:
        na = {"sqlite": "kill_connections", "postgresql": "disk_full"}[t["storage"]]
        rows.append([t["storage"], *("n/a" if k == na else t["faults"].get(k, 0) for k in fault_cells),
                     f"{t['rounds']} / {t['drivers']}", t["not_in_db"], t["unstated"], t["numbers_not_dense"],
                     t["tracebacks"],
                     f"{t['running_after_sigterm']} / {t['running_at_exit'] - t['running_after_sigterm']}",
                     t["unresolved"], f"{t['reader_reads']:,} / {t['reader_errors']}"])
    lines += md_table(
        ["storage", *fault_cells.values(), "rounds / driver runs", "started, not in DB", "FAILED with no stated fault",
         "numbers not dense (rounds)", "drivers with a traceback",
         "RUNNING when a driver exited: after SIGTERM / after an error (reaped later)",
         "configurations that ended FAILED", "concurrent reader: reads / errors"], rows)
    lines.append("")
    for t in res:
        if t["disk"]:
            lines.append(f"- Full disk on SQLite: {t['disk']}.")
        ends = "; ".join(f"{n}x \"{e}\"" for e, n in sorted(t["errors_ending_a_driver"].items(), key=lambda x: -x[1]))
        lines.append(f"- {t['storage']}: driver exit codes {t['exit_codes']} (143: the SIGTERM fault; 0: budget used "
                     f"up; 1: the run stopped on the storage's error, one line: {ends or 'none'}; -15: the SIGTERM "
                     "reached the driver script outside `optimize`, in its start-up or exit, where Python's default "
                     "action ends it). The concurrent reader saw: "
                     + ("; ".join(f"{n}x \"{e}\"" for e, n in Counter(t["reader_error_kinds"]).most_common())
                        or "no error") + ".")
    lines += [
        "- **completed trials lost**: the objective returned (side log) but the trial is not COMPLETED and the "
        "database states no fault. **interrupted after return**: the objective returned, and a fault (SIGKILL, "
        "SIGTERM, the full disk) hit before its result was committed; the database has the trial FAILED with "
        "that fault stated, and its configuration re-enqueued as a retry (max_retries=5). Its result is not "
        "silently lost, but it is not kept either: the work is redone, and the dollars it spent stay in the "
        "ledger. Only a transaction that commits the result together with the objective's return could make "
        "this column 0; it is reported apart, not counted as a loss.",
        "- **duplicated**: a trial number started twice, an enqueued configuration started as two non-retry "
        "trials, or a configuration's trial started while another of its trials was still running its "
        "objective (side-log times). **left RUNNING**: after the last driver, once heartbeat_grace_s (2 s) "
        "passed and `Study.reap(force=True)` ran. **orphan processes**: processes of a run (marked in "
        "/proc/PID/environ) alive 10 s after their driver exited. **ledger error**: the largest "
        "|study.cost_usd - sum of trial cost_usd| or |study.cost_usd - sum of measurement cost_usd| over rounds.",
        "",
    ]
    ok = all(all(not t[c] for c in LOSS_COLUMNS) for t in res)
    lines.append(f"Floor (issue 11): every loss column 0 on SQLite and on PostgreSQL: **{'PASS' if ok else 'FAIL'}**"
                 + ("" if ok else f" ({'; '.join(p for t in res for p in t['problems'])[:2000]})"))
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--storage", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--faults", type=int, default=200, help="faults to inject per storage (default 200)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    ap.add_argument("--json", default=str(HERE / "faults.json"))
    args = ap.parse_args()
    admin_url = os.environ.get("THRIFTY_TEST_POSTGRES", _postgres.DEFAULT_URL)
    kinds = ["sqlite", "postgresql"] if args.storage == "both" else [args.storage]
    if "postgresql" in kinds and not _postgres.can_connect(admin_url):
        print(f"faults: no PostgreSQL at {admin_url} (set THRIFTY_TEST_POSTGRES)", file=sys.stderr)
        return 2
    command = "python benchmarks/faults.py" + "".join(
        f" --{k} {v}" for k, v in (("storage", args.storage), ("faults", args.faults), ("seed", args.seed))
        if v != ap.get_default(k))
    t0 = time.time()
    source = source_fingerprint()
    raw = {}
    for kind in kinds:
        print(f"{kind}: {args.faults} faults ...", flush=True)
        raw[kind] = bench_storage(kind, args.faults, args.seed, admin_url)
    import sqlite3

    soft = versions(("thrifty", "SQLAlchemy", "psycopg"))
    software = (f"Python {soft.pop('python')}; " + "; ".join(f"{k} {v}" for k, v in soft.items())
                + f"; SQLite {sqlite3.sqlite_version}"
                + (f"; PostgreSQL {pg_server_version(admin_url)}" if "postgresql" in kinds else ""))
    end_source = source_fingerprint()
    data = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(), "software": software, "command": command,
        "seconds": time.time() - t0,
        "source": source if source == end_source else f"{source} at the start, {end_source} at the end",
        "results": [raw[k]["total"] for k in kinds], "rounds": {k: raw[k]["rounds"] for k in kinds},
    }
    Path(args.json).write_text(json.dumps(data, indent=1, default=str))
    text = render(data)
    print(text)
    write_results(Path(args.out), SECTION, text)
    return 0 if "**PASS**" in text else 1


if __name__ == "__main__":
    sys.exit(main())
