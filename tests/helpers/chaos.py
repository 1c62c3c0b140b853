"""Chaos harness (issue 11): a real multi-process run, faults injected from outside, invariants.

One module for ``tests/test_chaos.py`` (a bounded run) and ``benchmarks/faults.py`` (hundreds of
faults). A run is ``Study.optimize(n_workers=8)`` in a *driver* subprocess (this file run as a
script); the harness injects faults into it from outside:

- ``sigkill_worker``: SIGKILL of a random worker process (a child of the driver);
- ``sigterm_driver``: SIGTERM of the driver (the run stops; the harness starts a new driver on the
  same study: that is how a study resumes);
- ``kill_connections`` (PostgreSQL): ``pg_terminate_backend`` of every other session on the
  study's database;
- ``disk_full`` (SQLite): the file system of the study file fills up for a moment. Where a tmpfs can
  be mounted the study lives on a small tmpfs and a filler file takes its last free byte; elsewhere
  every process of the run gets ``RLIMIT_FSIZE`` = 1 byte (no file may grow; SIGXFSZ is ignored, so
  writes fail with EFBIG as on a full disk), lifted afterwards.

The objective writes ``start``/``returned`` lines to a pipe the harness reads (not a file: a full
disk or a file-size limit must not touch the witness), reports 3 steps with dyadic ``cost_usd``
(exact sums: the ledger must match to the last bit) and returns.

Invariants (:func:`check`), from the database and the side log: every trial accounted for (every
started trial is in the database; every trial whose objective returned is COMPLETED, or FAILED with
the fault stated: "interrupted after return", counted apart), none RUNNING after the heartbeat
grace and a reap, numbers dense, nothing handed out twice (a trial number started twice, an
enqueued configuration started as two non-retry trials, one configuration RUNNING in two trials at
once), the ledger equal to the sum of trial costs and of measurement costs, no process of the run
alive after its driver exited.

usage (the driver): ``python chaos.py drive URL NAME N_WORKERS STEP_S``;
(the concurrent reader): ``python chaos.py read URL NAME``.
"""

from __future__ import annotations

import errno
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: Marks the processes of a run (the driver and the workers it forks) in /proc/PID/environ.
MARK = "THRIFTY_CHAOS_RUN"
LOG_FD = "THRIFTY_CHAOS_LOG_FD"
STEPS = 3
HEARTBEAT_GRACE_S = 2.0
#: A process of the run still alive this long after its driver exited is an orphan.
ORPHAN_WAIT_S = 10.0
#: Substrings of the error of a trial failed by a fault (the database states why it ended).
FAULT_REASONS = ("interrupted", "worker lost", "worker stopped on an error", "supervisor process")
#: ... and of a trial failed by the storage's error inside its objective (a report on a full disk).
STORAGE_ERRORS = ("database or disk is full", "disk I/O error")


# -- the driver and the reader (run as scripts) ------------------------------------------------------
def _say(kind: str, trial: Any) -> None:
    key = params_key(trial.params)
    line = f"{kind} {trial.number} {os.getpid()} {time.time():.6f} {key}\n".encode()
    os.write(int(os.environ[LOG_FD]), line)  # one write below PIPE_BUF: atomic


def objective(trial: Any) -> float:
    _say("start", trial)
    step_s = float(os.environ.get("THRIFTY_CHAOS_STEP_S", "0.05"))
    rng = random.Random(trial.number)
    value = trial.params["x"] + trial.params["y"]
    for step in range(1, STEPS + 1):
        time.sleep(step_s * rng.uniform(0.5, 1.5))
        trial.report(value * step / STEPS, step=step, cost_usd=rng.randint(1, 8) / 128)  # dyadic: exact sums
    _say("returned", trial)
    return value


def drive(url: str, name: str, n_workers: int, step_s: float) -> int:
    """One run of the study until its trial budget is used up; 143 on SIGTERM, 1 on an error."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file-size limit makes writes fail, as a full disk
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ["THRIFTY_CHAOS_STEP_S"] = str(step_s)
    import thrifty as th

    try:
        study = th.Study.load(name, storage=url)
        result = study.optimize(objective, n_workers=n_workers, max_worker_deaths=1000, progress=False)
    except th.StopSignal as exc:
        print(f"driver: stopped: {exc.reason}", flush=True)
        return 128 + (exc.signum or 15)
    except th.ThriftyError as exc:
        print(f"driver: error: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"driver: {result}", flush=True)
    return 0


def read_loop(url: str, name: str) -> int:
    """Another program reading the study until SIGTERM: a raw connection opened and closed (as
    `sqlite3 study.db` or `psql` would), then thrifty's own load-read-close. Errors are counted
    (a full disk or a killed connection may refuse a read), never fatal."""
    import thrifty as th

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    reads, errors = 0, Counter()
    while not stop.is_set():
        via = "raw connection"
        try:
            if url.startswith("sqlite:///"):
                import sqlite3

                con = sqlite3.connect(url[len("sqlite:///"):], timeout=10)
                con.execute("SELECT count(*) FROM thrifty_trials").fetchone()
                con.close()
            else:
                import psycopg

                with psycopg.connect(url, connect_timeout=5) as con:
                    con.execute("SELECT count(*) FROM thrifty_trials").fetchone()
            via = "Study.load"
            study = th.Study.load(name, storage=url)
            study.counts()
            study.close()
            reads += 1
        except Exception as exc:  # noqa: BLE001 - counted, by message without the storage URL
            message = (str(exc).splitlines() or [""])[0].rsplit(": ", 1)[-1]
            errors[f"{via}: {type(exc).__name__}: {message}"] += 1
        stop.wait(0.02)
    print(json.dumps({"reads": reads, "errors": dict(errors)}), flush=True)
    return 0


# -- processes -------------------------------------------------------------------------------------
def params_key(params: Any) -> str:
    return json.dumps(dict(params), sort_keys=True, separators=(",", ":"))


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state letter) of every process, from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            table[int(entry)] = (int(fields[1]), fields[0])
    return table


def live_children(pid: int) -> list[int]:
    return [p for p, (ppid, state) in _proc_table().items() if ppid == pid and state != "Z"]


def marked(token: str) -> list[int]:
    """Live processes (not zombies) whose environment carries ``MARK=token``."""
    needle = f"{MARK}={token}".encode()
    out = []
    for pid, (_, state) in _proc_table().items():
        if state == "Z" or pid == os.getpid():
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            out.append(pid)
    return out


# -- full disk --------------------------------------------------------------------------------------
class Disk:
    """Where a SQLite study lives and how its disk is filled: a small tmpfs (``mode="tmpfs"``) or,
    where mounting is refused, a 1-byte ``RLIMIT_FSIZE`` on every process of the run
    (``mode="rlimit"``)."""

    def __init__(self, root: Path, size_mb: int = 64, force: str | None = None) -> None:
        self.dir = root / "disk"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.mode = "rlimit"
        self.refusal = ""
        if force != "rlimit":
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(self.dir)],
                               capture_output=True, text=True)
            if r.returncode == 0:
                self.mode = "tmpfs"
            else:
                self.refusal = (r.stderr or r.stdout).strip()
        self.size_mb = size_mb

    def describe(self) -> str:
        if self.mode == "tmpfs":
            return f"a {self.size_mb} MiB tmpfs filled to its last byte by a filler file, then freed"
        why = f" (mount -t tmpfs refused: {self.refusal})" if self.refusal else ""
        return ("RLIMIT_FSIZE = 1 byte on every process of the run (no file may grow: writes fail with EFBIG, "
                f"SIGXFSZ ignored), then lifted{why}")

    def fill(self, token: str, hold_s: float) -> None:
        if self.mode == "tmpfs":
            filler = self.dir / "filler"
            try:
                with open(filler, "wb", buffering=0) as fh:
                    for chunk in (1 << 20, 1 << 12, 1):
                        try:
                            while True:
                                fh.write(b"\0" * chunk)
                        except OSError as exc:
                            if exc.errno != errno.ENOSPC:
                                raise
                time.sleep(hold_s)
            finally:
                filler.unlink(missing_ok=True)
            return
        limited = set()
        end = time.time() + hold_s
        while time.time() < end:  # workers forked meanwhile inherit the limit; catch them all
            for pid in marked(token):
                if pid not in limited:
                    try:
                        resource.prlimit(pid, resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))
                        limited.add(pid)
                    except (ProcessLookupError, PermissionError):
                        pass
            time.sleep(0.05)
        for _ in range(3):
            for pid in marked(token):
                try:
                    resource.prlimit(pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.05)

    def release(self) -> None:
        if self.mode == "tmpfs":
            subprocess.run(["umount", "-l", str(self.dir)], capture_output=True)


def kill_connections(url: str) -> int:
    """Terminate every other session on the study's PostgreSQL database; returns how many."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as con:
        rows = con.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return sum(1 for (ok,) in rows if ok)


# -- a run -------------------------------------------------------------------------------------------
@dataclass
class Config:
    url: str
    name: str = "chaos"
    n_trials: int = 60  #: the study's trial budget (a retry does not count)
    n_enqueued: int = 8
    n_workers: int = 8
    max_retries: int = 5
    step_s: float = 0.05
    seed: int = 0


@dataclass
class Driver:
    """One driver process and what became of it."""

    proc: subprocess.Popen
    started: float
    faults: Counter = field(default_factory=Counter)
    exit_code: int | None = None
    out: str = ""
    err: str = ""
    running_at_exit: int = 0
    orphans: list[int] = field(default_factory=list)


class Run:
    """A study under chaos: drivers started one after the other, faults injected, a reader going."""

    def __init__(self, cfg: Config, workdir: Path, disk: Disk | None = None) -> None:
        import thrifty as th

        self.cfg, self.workdir, self.disk = cfg, workdir, disk
        self.token = f"{os.getpid()}-{cfg.name}-{cfg.seed}"
        self.rng = random.Random(cfg.seed)
        self.is_pg = not cfg.url.startswith("sqlite")
        self.lines: list[tuple[str, int, int, float, str]] = []
        self.drivers: list[Driver] = []
        self.faults: Counter = Counter()
        self.reader: subprocess.Popen | None = None
        self.reader_stats: dict[str, Any] = {}
        study = th.Study.create(
            {"x": th.Float(0.0, 1.0), "y": th.Float(0.0, 1.0)}, "max", name=cfg.name, storage=cfg.url,
            strategy="random", scheduler="none", seed=cfg.seed, budget={"trials": cfg.n_trials},
            max_retries=cfg.max_retries, heartbeat_grace_s=HEARTBEAT_GRACE_S,
        )
        self.enqueued = set()
        for i in range(cfg.n_enqueued):
            t = study.enqueue({"x": self.rng.random(), "y": self.rng.random()}, user_attrs={"enqueued": i})
            self.enqueued.add(params_key(t.params))
        study.close()
        self._r, self._w = os.pipe()
        self._reader_thread = threading.Thread(target=self._read_side_log, daemon=True)
        self._reader_thread.start()

    # side log
    def _read_side_log(self) -> None:
        buf = b""
        with os.fdopen(self._r, "rb", buffering=0) as fh:
            while chunk := fh.read(65536):
                buf += chunk
                *complete, buf = buf.split(b"\n")
                for line in complete:
                    kind, number, pid, t, key = line.decode().split(" ", 4)
                    self.lines.append((kind, int(number), int(pid), float(t), key))

    def _env(self, **extra: str) -> dict[str, str]:
        env = {**os.environ, **extra}
        src = str(Path(__file__).resolve().parents[2] / "src")
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
        return env

    # processes
    def start_reader(self) -> None:
        self.reader = subprocess.Popen([sys.executable, __file__, "read", self.cfg.url, self.cfg.name],
                                       env=self._env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop_reader(self) -> None:
        if self.reader is None:
            return
        self.reader.send_signal(signal.SIGTERM)
        out, err = self.reader.communicate(timeout=60)
        try:
            self.reader_stats = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            self.reader_stats = {"reads": 0, "errors": {"reader output": 1}, "stderr": err[-2000:]}
        self.reader = None

    def start_driver(self, step_s: float | None = None) -> Driver:
        """A driver; its trials' steps last ``step_s`` (default: the config's) on average."""
        proc = subprocess.Popen(
            [sys.executable, __file__, "drive", self.cfg.url, self.cfg.name, str(self.cfg.n_workers),
             str(self.cfg.step_s if step_s is None else step_s)],
            env=self._env(**{MARK: self.token, LOG_FD: str(self._w)}), pass_fds=(self._w,),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        d = Driver(proc, time.time())
        self.drivers.append(d)
        return d

    def wait_driver(self, d: Driver, timeout_s: float = 120.0) -> Driver:
        """Wait for the driver to exit; then count the run's RUNNING trials and its processes still
        alive ``ORPHAN_WAIT_S`` later."""
        try:
            d.out, d.err = d.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            d.proc.kill()
            try:
                d.out, d.err = d.proc.communicate(timeout=ORPHAN_WAIT_S)
            except subprocess.TimeoutExpired:  # its workers hold the pipes: they are orphans
                d.out, d.err = "", ""
            d.err += f"\n[harness] the driver did not exit within {timeout_s:g} s: killed"
        d.exit_code = d.proc.returncode
        d.running_at_exit = self.count_running()
        end = time.time() + ORPHAN_WAIT_S
        while marked(self.token) and time.time() < end:
            time.sleep(0.1)
        d.orphans = marked(self.token)
        for pid in d.orphans:  # reported; then ended, so they do not disturb what follows
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return d

    def count_running(self) -> int:
        import thrifty as th

        study = th.Study.load(self.cfg.name, storage=self.cfg.url)
        try:
            return study.counts().get(th.TrialState.RUNNING, 0)
        finally:
            study.close()

    def wait_for_trials(self, d: Driver, n: int, timeout_s: float = 60.0) -> bool:
        """Until ``n`` more trials started since the driver started (False if it exited first)."""
        end = time.time() + timeout_s
        while time.time() < end and d.proc.poll() is None:
            if sum(1 for line in list(self.lines) if line[0] == "start" and line[3] >= d.started) >= n:
                return True
            time.sleep(0.05)
        return False

    # faults
    def inject(self, d: Driver, kind: str) -> bool:
        """One fault into the run of driver ``d``; False if there was nothing to hit."""
        if kind == "sigkill_worker":
            workers = live_children(d.proc.pid)
            if not workers:
                return False
            try:
                os.kill(self.rng.choice(workers), signal.SIGKILL)
            except ProcessLookupError:
                return False
        elif kind == "sigterm_driver":
            if d.proc.poll() is not None:
                return False
            d.proc.send_signal(signal.SIGTERM)
        elif kind == "kill_connections":
            if kill_connections(self.cfg.url) == 0:
                return False
        elif kind == "disk_full":
            assert self.disk is not None
            self.disk.fill(self.token, hold_s=self.rng.uniform(0.3, 1.5))
        else:
            raise ValueError(kind)
        d.faults[kind] += 1
        self.faults[kind] += 1
        return True

    def chaos(self, d: Driver, n_faults: int, kinds: dict[str, float], gap_s: tuple[float, float] = (0.2, 0.8),
              sigterm: bool = True) -> None:
        """``n_faults`` faults of ``kinds`` (weights) at random gaps, then SIGTERM of the driver."""
        names, weights = list(kinds), list(kinds.values())
        done = 0
        while done < n_faults and d.proc.poll() is None:
            time.sleep(self.rng.uniform(*gap_s))
            if self.inject(d, self.rng.choices(names, weights)[0]):
                done += 1
        if sigterm:
            time.sleep(self.rng.uniform(*gap_s))
            self.inject(d, "sigterm_driver")

    def finish(self) -> None:
        """The study resumes: a driver without faults runs until the trial budget is used up."""
        d = self.start_driver()
        self.wait_driver(d, timeout_s=300)

    def close(self) -> None:
        """Stop the reader, and end whatever of the run is still alive (after a failed check)."""
        for d in self.drivers:
            if d.proc.poll() is None:
                d.proc.kill()
        for pid in marked(self.token):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.stop_reader()
        os.close(self._w)
        self._reader_thread.join(timeout=5)


# -- invariants ----------------------------------------------------------------------------------------
@dataclass
class Report:
    storage: str
    faults: dict[str, int]
    drivers: int
    trials: int
    completed: int
    returned: int  #: trials whose objective returned (side log)
    lost: int  #: returned, not COMPLETED, and no fault stated
    interrupted_after_return: int  #: returned, then FAILED with the fault stated (retried if allowed)
    not_in_db: int  #: started (side log) but absent from the database
    duplicated: int
    running_left: int
    running_at_exit: int  #: RUNNING when a driver exited (reaped later): information, not a loss
    running_after_sigterm: int  #: ... when a driver stopped by SIGTERM exited (SIGTERM promises none)
    orphans: int
    ledger_error_usd: float
    numbers_dense: bool
    pending_left: int
    unresolved: int  #: lineages whose last attempt FAILED (retries used up): information
    finished_lineages: int
    tracebacks: int  #: driver runs whose stderr shows a Python traceback
    unstated: int  #: FAILED trials whose error states no fault
    exit_codes: dict[str, int]
    reader: dict[str, Any]
    problems: list[str]

    @property
    def losses(self) -> dict[str, float]:
        return {"lost": self.lost, "not_in_db": self.not_in_db, "duplicated": self.duplicated,
                "running_left": self.running_left, "orphans": self.orphans, "ledger_error_usd": self.ledger_error_usd,
                "numbers_not_dense": int(not self.numbers_dense), "tracebacks": self.tracebacks,
                "unstated": self.unstated}

    def ok(self) -> bool:
        return not any(self.losses.values())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check(run: Run, final: bool) -> Report:
    """The invariants, after the heartbeat grace and a forced reap. ``final``: the study's trial
    budget must be used up (no PENDING, as many finished lineages as the budget)."""
    import thrifty as th

    time.sleep(HEARTBEAT_GRACE_S + 0.5)
    study = th.Study.load(run.cfg.name, storage=run.cfg.url)
    try:
        study.reap(force=True)
        trials = study.trials
        ledger = study.cost_usd
    finally:
        study.close()
    problems: list[str] = []
    by_number = {t.number: t for t in trials}
    numbers = sorted(by_number)
    dense = numbers == list(range(len(trials))) and len(numbers) == len(trials)
    if not dense:
        problems.append(f"trial numbers not dense: {numbers}")

    starts = Counter(n for kind, n, *_ in run.lines if kind == "start")
    returned = {n for kind, n, *_ in run.lines if kind == "returned"}
    started_at = {n: t for kind, n, _, t, _ in run.lines if kind == "start"}
    returned_at = {n: t for kind, n, _, t, _ in run.lines if kind == "returned"}
    inf = float("inf")
    twice = [n for n, c in starts.items() if c > 1]
    not_in_db = [n for n in starts if n not in by_number]
    lost, after_return = [], []
    for n in sorted(returned):
        t = by_number.get(n)
        if t is not None and t.state is th.TrialState.COMPLETED:
            continue
        if t is not None and t.state is th.TrialState.FAILED and any(r in (t.error or "") for r in FAULT_REASONS):
            after_return.append(n)
        else:
            lost.append(n)
            problems.append(f"trial {n} returned but is {t.state.value if t else 'absent'}: {t.error if t else ''}")

    # Nothing handed out twice.
    dup = len(twice)
    if twice:
        problems.append(f"trial numbers started twice: {twice}")
    by_key: dict[str, list[Any]] = {}
    for t in trials:
        by_key.setdefault(params_key(t.params), []).append(t)
    for key, group in by_key.items():
        roots = [t for t in group if t.retry_of is None]
        if len(roots) > 1:
            dup += len(roots) - 1
            problems.append(f"configuration {key} started as {len(roots)} trials: {[t.number for t in roots]}")
        # Two at once, as the objective saw it (the database's timestamps are taken before each
        # transaction waits for the lock, so they cannot order a reap and the next claim).
        for a in group:
            for b in group:
                if a.number != b.number and started_at.get(a.number, inf) < started_at.get(b.number, inf) \
                        < returned_at.get(a.number, -inf):
                    dup += 1
                    problems.append(f"configuration {key}: trial {b.number} started while trial {a.number} ran")
    missing = [k for k in run.enqueued if k not in by_key]
    if missing and final:
        problems.append(f"enqueued configurations never run: {missing}")

    running = [t.number for t in trials if t.state is th.TrialState.RUNNING]
    if running:
        problems.append(f"RUNNING after the grace period and a reap: {running}")
    pending = [t.number for t in trials if t.state is th.TrialState.PENDING]
    lineages = [t for t in trials if not t.retried and t.state.is_finished]
    unresolved = [t.number for t in lineages if t.state is th.TrialState.FAILED]
    if final:
        if pending:
            problems.append(f"PENDING after the study was run to its end: {pending}")
        if len(lineages) != run.cfg.n_trials:
            problems.append(f"{len(lineages)} finished lineages, expected the budget's {run.cfg.n_trials}")
    unstated = [t.number for t in trials if t.state is th.TrialState.FAILED
                and not any(r in (t.error or "") for r in FAULT_REASONS + STORAGE_ERRORS)]
    if unstated:
        problems.append(f"FAILED without a stated fault: {[(n, by_number[n].error) for n in unstated]}")
    sum_trials = sum(t.cost_usd for t in trials)
    sum_meas = sum(m.cost_usd for t in trials for m in t.measurements)
    ledger_error = max(abs(ledger - sum_trials), abs(ledger - sum_meas))
    if ledger_error:
        problems.append(f"ledger ${ledger!r} vs sum of trials ${sum_trials!r}, of measurements ${sum_meas!r}")
    orphans = sum(len(d.orphans) for d in run.drivers)
    if orphans:
        problems.append(f"processes alive {ORPHAN_WAIT_S:g} s after their driver exited: "
                        f"{[d.orphans for d in run.drivers if d.orphans]}")
    tracebacks = sum(1 for d in run.drivers if "Traceback" in d.err or "Traceback" in d.out)
    if tracebacks:
        problems.append("driver output with a traceback: " + next(d.err for d in run.drivers if "Traceback" in d.err))
    if final and run.drivers and run.drivers[-1].exit_code != 0:
        problems.append(f"the last driver (no faults) exited {run.drivers[-1].exit_code}: {run.drivers[-1].err[-500:]}")
    return Report(
        storage="postgresql" if run.is_pg else "sqlite", faults=dict(run.faults), drivers=len(run.drivers),
        trials=len(trials), completed=sum(t.state is th.TrialState.COMPLETED for t in trials), returned=len(returned),
        lost=len(lost), interrupted_after_return=len(after_return), not_in_db=len(not_in_db), duplicated=dup,
        running_left=len(running), running_at_exit=sum(d.running_at_exit for d in run.drivers),
        running_after_sigterm=sum(d.running_at_exit for d in run.drivers if d.exit_code == 143), orphans=orphans,
        ledger_error_usd=ledger_error, numbers_dense=dense, pending_left=len(pending), unresolved=len(unresolved),
        finished_lineages=len(lineages), tracebacks=tracebacks, unstated=len(unstated),
        exit_codes=dict(Counter(str(d.exit_code) for d in run.drivers)), reader=run.reader_stats, problems=problems,
    )


def scratch_dir(prefix: str = "thrifty-chaos-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


if __name__ == "__main__":
    cmd, *rest = sys.argv[1:]
    if cmd == "drive":
        sys.exit(drive(rest[0], rest[1], int(rest[2]), float(rest[3])))
    if cmd == "read":
        sys.exit(read_loop(rest[0], rest[1]))
    sys.exit(f"unknown command {cmd!r}; see the module docstring")
