"""``thrifty.Client(url, token)``: a study served by ``thrifty serve``, used as a local one.

``Client.create_study`` / ``load_study`` return a :class:`RemoteStudy` with the surface of
:class:`~thrifty.study.Study` that running trials needs: ``ask`` (a :class:`RemoteTrial` with
``params``, ``number``, ``report``, ``should_stop``), ``tell``, ``optimize(fn)``, ``best``,
``trials``, ``budget``/``cost_usd``, so an objective written for a local study runs remotely
unchanged.

Contract:

- **HTTP** through the standard library (:mod:`http.client`: one keep-alive connection per
  thread), JSON both ways, ``Authorization: Bearer <token>``.
- **Errors** come back as thrifty's: 404 :class:`~thrifty.errors.StudyNotFound` (or
  :class:`~thrifty.errors.TrialNotRunning` for a trial), 409
  :class:`~thrifty.errors.DuplicateStudy` / ``TrialNotRunning``, 422
  :class:`~thrifty.errors.ValidationError`, 503 :class:`~thrifty.errors.StorageError`; 401/403
  :class:`ServiceError`. Each carries the service's one-line message.
- **A lost connection** (the service restarting, a network partition) is retried with a growing
  pause for up to ``retry_s`` seconds, then :class:`ServiceError`. A call whose answer was lost
  may have been done: ``suggest`` hands the same trials back (the client's RUNNING ones come
  first), a ``complete``/``fail``/``stop`` found done is answered from the stored trial, and a
  ``report`` may be recorded twice.
- **Metering**: the client measures each interval itself (``time.monotonic``: from the suggest's
  answer to the first report, then report to report) and sends it as ``elapsed_s``, so the
  service charges the objective's time, not the network's, and a service restart loses none.
- **Heartbeats**: while the client holds trials a daemon thread tells the service every
  ``min(heartbeat_grace_s / 4, 10 s)`` that they are alive; a client that stops (a crash, a
  partition longer than the grace) loses its trials to the reaper, as a dead worker does.
- **client_id** (default: a new random one per :class:`Client`): the worker id its trials are
  started under. A process that starts again with the same id gets its RUNNING trials back first.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import traceback
import urllib.parse
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from thrifty.cost.budget import Budget
from thrifty.errors import (
    DuplicateStudy,
    StorageError,
    StudyExhausted,
    StudyNotFound,
    ThriftyError,
    TrialFailed,
    TrialInfeasible,
    TrialNotRunning,
    TrialStopped,
    ValidationError,
)
from thrifty.trial import StopKind, StopReason, Trial, TrialState

API_PREFIX = "/api/v1"


class ServiceError(ThriftyError):
    """The service refused a call (401/403: ``status``) or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Client:
    """The HTTP service at ``url`` (e.g. ``http://127.0.0.1:8787``), with bearer ``token``
    (``None``: a service started with ``--no-auth``). ``timeout_s``: per request. ``retry_s``: how
    long a lost connection is retried. ``client_id``: see the module docstring."""

    def __init__(self, url: str, token: str | None = None, *, client_id: str | None = None,
                 timeout_s: float = 60.0, retry_s: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError(f"url {url!r}: expected http://HOST:PORT or https://HOST:PORT")
        self.url = url.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._base = parts.path.rstrip("/") + API_PREFIX
        self.token = token
        self.client_id = client_id or uuid.uuid4().hex
        self.timeout_s = float(timeout_s)
        self.retry_s = float(retry_s)
        self._local = threading.local()

    # -- studies ------------------------------------------------------------------------------
    def create_study(self, space: Mapping[str, Any], objective: str | Mapping[str, str] = "max", *, name: str,
                     load_if_exists: bool = False, **settings: Any) -> RemoteStudy:
        """Create study ``name`` on the service (an admin token), with the settings
        :meth:`thrifty.study.Study.create` takes as plain JSON data (``strategy``, ``scheduler``,
        ``seed``, ``budget``, ``pricing``, ``resources``, ``stop_when``, ``max_retries``,
        ``heartbeat_grace_s``, ``keep_checkpoints``, ``constraints``). ``load_if_exists``: a
        study of that name is loaded instead."""
        body = {"name": name, "space": _plain(space), "objective": _plain(objective), **_plain(settings)}
        try:
            self.request("POST", "/studies", body)
        except DuplicateStudy:
            if not load_if_exists:
                raise
        return self.load_study(name)

    def load_study(self, name: str) -> RemoteStudy:
        """The study ``name`` (:class:`~thrifty.errors.StudyNotFound` if the token does not open it)."""
        return RemoteStudy(self, self.request("GET", _study_path(name)))

    def list_studies(self) -> list[dict[str, Any]]:
        """The studies this token opens: name, objectives, counts by state, dollars spent."""
        return list(self.request("GET", "/studies")["studies"])

    def delete_study(self, name: str) -> None:
        """Delete study ``name`` and its trials (an admin token)."""
        self.request("DELETE", _study_path(name))

    # -- HTTP ---------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One call of the API (``path`` under ``/api/v1``); the answer's JSON. Errors: see the
        module docstring."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        deadline = time.monotonic() + self.retry_s
        pause = 0.05
        while True:
            try:
                status, text = self._send(method, self._base + path, data, headers)
                break
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                if time.monotonic() + pause > deadline:
                    raise ServiceError(f"cannot reach the thrifty service at {self.url} "
                                       f"({type(exc).__name__}: {exc}) for {self.retry_s:g} s") from None
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
        try:
            answer = json.loads(text) if text else None
        except ValueError:
            answer = None
        if status < 400:
            return answer
        message = answer.get("error") if isinstance(answer, dict) else None
        raise _error(status, message or f"HTTP {status}: {text[:200]}", path)

    def _send(self, method: str, path: str, data: bytes | None, headers: dict[str, str]) -> tuple[int, str]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = kind(self._host, self._port, timeout=self.timeout_s)
            self._local.conn = conn
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", errors="replace")

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def __repr__(self) -> str:
        return f"Client({self.url!r}, client_id={self.client_id!r})"


def _error(status: int, message: str, path: str) -> ThriftyError:
    on_trial = "/trials/" in path
    if status == 404:
        return TrialNotRunning(message) if on_trial and "no RUNNING" in message else StudyNotFound(message)
    if status == 409:
        return TrialNotRunning(message) if on_trial else DuplicateStudy(message)
    if status in (400, 422):
        return ValidationError(message)
    if status == 503:
        return StorageError(message)
    return ServiceError(message, status)


def _study_path(name: str) -> str:
    return "/studies/" + urllib.parse.quote(name, safe="")


def _plain(value: Any) -> Any:
    """Settings as JSON data: a value with ``to_dict`` (a Budget, a Pricing) as its dict."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _number(v: Any) -> Any:
    return float(v) if isinstance(v, str) and v in ("nan", "inf", "-inf") else v


def _trial(data: Mapping[str, Any], objective: str | None) -> Trial:
    """A :class:`~thrifty.trial.Trial` from the service's JSON (without measurements)."""
    fields = {k: data.get(k) for k in ("number", "state", "params", "error", "reason", "stop_kind", "stop_limit",
                                        "worker_id", "retry_of", "created_at", "started_at", "finished_at")}
    fields["metrics"] = {k: float(_number(v)) for k, v in (data.get("metrics") or {}).items()}
    fields["cost_usd"] = float(data.get("cost_usd") or 0.0)
    fields["elapsed_s"] = float(data.get("elapsed_s") or 0.0)
    fields["created_at"] = float(fields["created_at"] or 0.0)
    trial = Trial(**fields)
    return trial.named(objective) if objective is not None else trial


@dataclass(frozen=True)
class RemoteRunResult:
    """What :meth:`RemoteStudy.optimize` did: trials started and finished in this call by state,
    and why it ended (``reason``: the study's exhaustion reason, e.g. ``"usd"``, ``"trials"``,
    ``"strategy"``; ``"n_trials"`` or ``"timeout"`` for the call's own limits)."""

    n_started: int
    states: Mapping[str, int]
    reason: str
    message: str


class RemoteStudy:
    """A study on the service (see the module docstring); made by :class:`Client`."""

    def __init__(self, client: Client, info: Mapping[str, Any]) -> None:
        self.client = client
        self.info = dict(info)
        self.name: str = info["name"]
        self.objectives: dict[str, str] = dict(info["objectives"])
        self.heartbeat_grace_s = float(info.get("heartbeat_grace_s") or 60.0)
        self._path = _study_path(self.name)
        self._held: dict[int, RemoteTrial] = {}
        self._lock = threading.Lock()
        self._asking = threading.Lock()
        self._beat: threading.Thread | None = None
        self._stop_beat = threading.Event()

    @property
    def _objective(self) -> str | None:
        return next(iter(self.objectives)) if len(self.objectives) == 1 else None

    @property
    def is_multi_objective(self) -> bool:
        return len(self.objectives) > 1

    # -- ask / tell ---------------------------------------------------------------------------
    def ask(self) -> RemoteTrial:
        """Start a trial (the client's RUNNING trials not yet handed to this object come first).
        Raises :class:`~thrifty.errors.StudyExhausted` when no trial can start (a budget, a
        criterion, the strategy), as a local ``ask`` does."""
        with self._asking:  # one ask at a time: each must see the trials the others took
            with self._lock:
                held = set(self._held)
            answer = self.client.request("POST", self._path + "/suggest",
                                         {"count": min(len(held) + 1, 100), "client_id": self.client.client_id})
            self.heartbeat_grace_s = float(answer.get("heartbeat_grace_s") or self.heartbeat_grace_s)
            for data in answer["trials"]:
                if data["number"] not in held:
                    trial = RemoteTrial(self, data)
                    with self._lock:
                        self._held[trial.number] = trial
                    self._ensure_beat()
                    return trial
        exhausted = answer.get("exhausted") or {"reason": "client", "message": "this client holds 100 trials already"}
        raise StudyExhausted(exhausted["message"], exhausted["reason"])

    def tell(self, trial: RemoteTrial | int, value: float | Mapping[str, float] | None = None, *,
             state: TrialState | str | None = None, cost_usd: float = 0.0, elapsed_s: float | None = None,
             error: str | None = None, reason: str | None = None) -> Trial:
        """Finish a RUNNING trial, as :meth:`thrifty.study.Study.tell`: a ``value`` completes it;
        ``state`` ``"failed"`` (with ``error``), ``"infeasible"`` (``error`` says why) or
        ``"stopped"`` (its last report; ``reason``). Returns the finished trial."""
        handle = trial if isinstance(trial, RemoteTrial) else self._held.get(int(trial))
        number = handle.number if handle is not None else int(trial)  # type: ignore[arg-type]
        st = TrialState.parse(state) if state is not None else None
        if elapsed_s is None and handle is not None:
            elapsed_s = handle.interval_s()
        base = f"{self._path}/trials/{number}"
        timing = {"cost_usd": cost_usd, **({"elapsed_s": elapsed_s} if elapsed_s is not None else {})}
        if st is None and value is not None or st is TrialState.COMPLETED:
            if value is None:
                raise ValidationError(f"tell(trial {number}, state='completed'): give the value")
            action, body = "complete", {"value": _plain(value), **timing}
        elif st is TrialState.FAILED:
            action, body = "fail", {"error": error or "failed", **timing}
        elif st is TrialState.INFEASIBLE:
            action, body = "infeasible", {"reason": error or reason or "infeasible", **timing}
            if value is not None:
                body["metrics"] = _plain(value) if isinstance(value, Mapping) else {self._objective or "value": value}
        elif st in (None, TrialState.STOPPED, TrialState.PAUSED):
            action, body = "stop", {"reason": reason, **timing}
        else:
            raise ValidationError(f"tell(state={st.value!r}): expected 'completed', 'failed', 'infeasible' or "
                                  "'stopped'")
        try:
            data = self.client.request("POST", f"{base}/{action}", body)
        except TrialNotRunning:
            data = self._finished_already(number)
        finally:
            with self._lock:
                self._held.pop(number, None)
        return _trial(data, self._objective)

    def _finished_already(self, number: int) -> Mapping[str, Any]:
        """The trial as stored, when a finishing call was refused because it is finished: the
        answer to our own earlier call was lost (else the refusal stands)."""
        data = self.client.request("GET", f"{self._path}/trials/{number}")
        mine = data.get("worker_id") == "service:" + self.client.client_id
        if not mine or data.get("state") in ("running", "pending"):
            raise TrialNotRunning(f"study {self.name!r}: trial {number} is {data.get('state')} and not this "
                                  "client's to finish")
        return data

    # -- heartbeats ---------------------------------------------------------------------------
    def _ensure_beat(self) -> None:
        with self._lock:
            if self._beat is not None and self._beat.is_alive():
                return
            self._stop_beat.clear()
            self._beat = threading.Thread(target=self._beat_loop, name=f"thrifty-client-heartbeat-{self.name}",
                                          daemon=True)
            self._beat.start()

    def _beat_loop(self) -> None:
        interval = max(min(self.heartbeat_grace_s / 4, 10.0), 0.5)
        while not self._stop_beat.wait(interval):
            with self._lock:
                numbers = sorted(self._held)
            if not numbers:
                continue
            try:
                self.client.request("POST", self._path + "/heartbeat", {"trials": numbers})
            except ThriftyError:  # retried at the next beat
                continue

    def close(self) -> None:
        """Stop the heartbeat thread (trials still held are reaped after the grace)."""
        self._stop_beat.set()

    # -- running ------------------------------------------------------------------------------
    def optimize(self, objective: Callable[[RemoteTrial], Any], n_trials: int | None = None,
                 timeout_s: float | None = None, *, n_workers: int = 1,
                 max_consecutive_failures: int | None = 20) -> RemoteRunResult:
        """Run ``objective`` on trials until ``n_trials`` have started in this call, the study is
        exhausted (its budget, a criterion, the strategy) or ``timeout_s`` has passed, as
        :meth:`thrifty.study.Study.optimize` does in one process: a returned value completes the
        trial; ``None`` after reports stops it (PAUSED when the scheduler paused it); an exception
        fails it with its traceback (:class:`~thrifty.errors.TrialFailed` /
        :class:`~thrifty.errors.TrialInfeasible`: its message); :class:`TrialStopped` (a hard
        budget) stops it. ``n_workers``: threads of this process, each asking in turn."""
        if n_trials is not None and (not isinstance(n_trials, int) or n_trials < 1):
            raise ValidationError(f"n_trials={n_trials!r}: expected a positive integer or None")
        if not isinstance(n_workers, int) or n_workers < 1:
            raise ValidationError(f"n_workers={n_workers!r}: expected a positive integer")
        started_at = time.monotonic()
        lock = threading.Lock()
        counts: dict[str, int] = {}
        run = {"started": 0, "failures": 0, "reason": "", "message": ""}

        def next_trial() -> RemoteTrial | None:
            with lock:
                if run["reason"]:
                    return None
                if n_trials is not None and run["started"] >= n_trials:
                    run["reason"], run["message"] = "n_trials", f"{n_trials} trials started"
                    return None
                if timeout_s is not None and time.monotonic() - started_at >= timeout_s:
                    run["reason"], run["message"] = "timeout", f"no trial starts after {timeout_s:g} s"
                    return None
                run["started"] += 1
            try:
                return self.ask()
            except StudyExhausted as exc:
                with lock:
                    run["started"] -= 1
                    run["reason"] = run["reason"] or exc.reason
                    run["message"] = run["message"] or str(exc)
                return None

        def work() -> None:
            while (trial := next_trial()) is not None:
                state = self._run_one(objective, trial).state.value
                with lock:
                    counts[state] = counts.get(state, 0) + 1
                    run["failures"] = run["failures"] + 1 if state == "failed" else 0
                    if max_consecutive_failures is not None and run["failures"] >= max_consecutive_failures:
                        run["reason"] = "failures"
                        run["message"] = f"{run['failures']} trials failed in a row"

        threads = [threading.Thread(target=work, name=f"thrifty-client-worker-{i}") for i in range(n_workers - 1)]
        for t in threads:
            t.start()
        work()
        for t in threads:
            t.join()
        if run["reason"] == "failures":
            from thrifty.errors import TooManyFailures

            raise TooManyFailures(f"study {self.name!r}: {run['message']}")
        return RemoteRunResult(run["started"], counts, run["reason"], run["message"])

    def _run_one(self, objective: Callable[[RemoteTrial], Any], trial: RemoteTrial) -> Trial:
        try:
            result = objective(trial)
        except TrialFailed as exc:
            return self.tell(trial, state="failed", error=str(exc))
        except TrialInfeasible as exc:
            return self.tell(trial, state="infeasible", error=str(exc))
        except TrialStopped:
            return self.tell(trial, state="stopped", reason=trial.stop_reason)
        except TrialNotRunning:
            with self._lock:
                self._held.pop(trial.number, None)
            return _trial({"number": trial.number, "state": "failed", "params": dict(trial.params),
                           "error": "finished elsewhere"}, None)
        except Exception:  # noqa: BLE001 - failures are data
            return self.tell(trial, state="failed", error=traceback.format_exc())
        if result is None:
            if trial.last_metrics is None:
                return self.tell(trial, state="failed", error="the objective returned None without reporting "
                                                              "anything; return the objective value")
            return self.tell(trial, state="stopped", reason=trial.stop_reason)
        try:
            return self.tell(trial, result)
        except ValidationError as exc:
            return self.tell(trial, state="failed", error=f"invalid result {result!r}: {exc}")

    # -- reading ------------------------------------------------------------------------------
    @property
    def trials(self) -> list[Trial]:
        """Every trial in number order (without measurements)."""
        return self.get_trials()

    def get_trials(self, states: Sequence[TrialState | str] | None = None) -> list[Trial]:
        """The trials (of ``states`` only, if given) in number order, read a page at a time."""
        wanted = [TrialState.parse(s).value for s in states] if states else [None]
        found: list[Trial] = []
        for state in wanted:
            offset = 0
            while True:
                query = f"?offset={offset}&limit=1000" + (f"&state={state}" if state else "")
                page = self.client.request("GET", f"{self._path}/trials{query}")["trials"]
                found += [_trial(t, self._objective) for t in page]
                if len(page) < 1000:
                    break
                offset += 1000
        return sorted(found, key=lambda t: t.number)

    @property
    def best(self) -> Trial:
        """The best COMPLETED feasible trial, as :attr:`thrifty.study.Study.best` ranks it."""
        if self.is_multi_objective:
            raise ThriftyError(f"study {self.name!r} has {len(self.objectives)} objectives; use pareto_front()")
        data = self.client.request("GET", self._path + "/best")["best"]
        if data is None:
            raise ThriftyError(f"study {self.name!r} has no completed trial with a finite objective value yet")
        return _trial(data, self._objective)

    def pareto_front(self) -> list[Trial]:
        """The first Pareto front of a multi-objective study."""
        data = self.client.request("GET", self._path + "/best").get("pareto_front") or []
        return [_trial(t, None) for t in data]

    @property
    def budget(self) -> Budget:
        """The study's budget as stored now."""
        return Budget.from_dict(self.client.request("GET", self._path + "/budget")["budget"])

    @property
    def cost_usd(self) -> float:
        """Dollars the study has spent so far."""
        return float(self.client.request("GET", self._path + "/budget")["spent_usd"])

    def ledger(self) -> dict[str, Any]:
        """What ``thrifty report`` says of the study, as JSON data."""
        return dict(self.client.request("GET", self._path + "/ledger"))

    def __repr__(self) -> str:
        return f"RemoteStudy(name={self.name!r}, url={self.client.url!r})"


class RemoteTrial:
    """A RUNNING trial handed out by :meth:`RemoteStudy.ask`: what an objective is given."""

    def __init__(self, study: RemoteStudy, data: Mapping[str, Any]) -> None:
        self.study = study
        self.number: int = int(data["number"])
        self.params: Mapping[str, Any] = dict(data["params"])
        self.start_step = float(data.get("start_step") or 0.0)
        self.retry_of: int | None = data.get("retry_of")
        self.parent: int | None = data.get("parent")
        self._last_step: float | None = data.get("last_step")
        self._last_metrics: dict[str, float] | None = None
        self._mark = time.monotonic()
        self._verdict: dict[str, Any] | None = None
        self.stop: StopReason | None = None
        self.pausing = False

    @property
    def last_metrics(self) -> Mapping[str, float] | None:
        return None if self._last_metrics is None else dict(self._last_metrics)

    @property
    def last_step(self) -> float | None:
        return self._last_step

    @property
    def stop_reason(self) -> str | None:
        return None if self.stop is None else self.stop.text

    def interval_s(self) -> float:
        """Seconds since the previous report (or the ask), restarting the interval."""
        now = time.monotonic()
        elapsed, self._mark = max(now - self._mark, 0.0), now
        return elapsed

    def report(self, metrics: float | Mapping[str, float], step: float | None = None, *, cost_usd: float = 0.0,
               elapsed_s: float | None = None) -> None:
        """Record an intermediate result (as :meth:`thrifty.handle.TrialHandle.report`); the
        service's answer says whether to stop (read by :meth:`should_stop` without another call).
        Raises :class:`~thrifty.errors.TrialStopped` after recording when a hard budget is
        reached."""
        values = dict(metrics) if isinstance(metrics, Mapping) else metrics
        body: dict[str, Any] = {"metrics": values, "cost_usd": cost_usd,
                                "elapsed_s": self.interval_s() if elapsed_s is None else elapsed_s}
        if step is not None:
            body["step"] = step
        answer = self.study.client.request("POST", f"{self.study._path}/trials/{self.number}/report", body)
        if step is not None:
            self._last_step = float(step)
        name = self.study._objective or "value"
        self._last_metrics = {k: float(v) for k, v in values.items()} if isinstance(values, dict) else {name: values}
        self._take(answer)
        if self.stop is not None and self.stop.kind is StopKind.BUDGET:
            raise TrialStopped(f"trial {self.number} must stop: {self.stop.text}", str(self.stop.text))

    def should_stop(self) -> bool:
        """Whether the trial should end now: the answer to the last :meth:`report`, else asked."""
        if self.stop is not None:
            return True
        if self._verdict is None:
            self._take(self.study.client.request("POST", f"{self.study._path}/trials/{self.number}/should-stop"))
        verdict, self._verdict = self._verdict, None
        return bool(verdict and verdict["should_stop"])

    def _take(self, answer: Mapping[str, Any]) -> None:
        self._verdict = dict(answer)
        self.pausing = bool(answer.get("pausing"))
        if answer.get("should_stop") and answer.get("stop_kind"):
            self.stop = StopReason(StopKind(answer["stop_kind"]), answer.get("reason") or "", answer.get("stop_limit"))
        elif answer.get("should_stop") and answer.get("reason"):
            self.stop = StopReason(StopKind.SCHEDULER, answer["reason"])

    def __repr__(self) -> str:
        return f"RemoteTrial(number={self.number}, params={dict(self.params)!r})"


__all__ = ["Client", "RemoteRunResult", "RemoteStudy", "RemoteTrial", "ServiceError"]
