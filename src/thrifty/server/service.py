"""The ask/tell service: the :class:`~thrifty.study.Study` API over HTTP (``thrifty serve``).

Contract:

- **Endpoints** (under ``/api/v1``, described at ``/openapi.json``): ``GET/POST /studies``,
  ``GET/DELETE /studies/{name}``; ``POST /studies/{name}/suggest`` (``count``, ``client_id``);
  per trial ``POST .../trials/{number}/report`` (answers whether the trial should stop),
  ``should-stop``, ``complete``, ``infeasible``, ``fail``, ``stop``; ``POST
  /studies/{name}/heartbeat``; ``GET .../trials``, ``.../trials/{number}``, ``.../best``,
  ``.../budget`` (limits, spent, left) and ``.../ledger`` (what ``thrifty report`` says).
- **One lifecycle.** Every call is a call of the public Study API (``Study.create``, ``ask``,
  ``attach``, a handle's ``report``/``should_stop``, ``tell``), on the study objects of
  :mod:`thrifty.server._live`: budgets, schedulers, retries and the reaper apply as in a local
  run. The storage is the truth: a restarted service has every study, and a client that comes
  back with its ``client_id`` gets its RUNNING trials first (never another client's).
- **Access.** ``Authorization: Bearer <token>`` (:mod:`thrifty.server.tokens`): no or a bad
  token is 401; a study the token does not open is 404, the same answer as a study that does not
  exist (a token learns nothing of other studies; ``GET /studies`` lists only its own); a role
  too low is 403. Without authentication (``--no-auth``, loopback only) every call is allowed.
- **Errors** are JSON ``{"error": "<one line saying what to change>"}``: 422 an invalid value
  (the body's shape, a space, a budget, a metric), 404 an unknown study or trial, 409 a state
  that forbids the call (a name taken, a trial no longer running), 401/403 access, 503 the
  storage unreachable. Malformed input never gives a 5xx.
"""

import logging
import math
import uuid
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from thrifty.errors import (
    DuplicateStudy,
    StudyNotFound,
    ThriftyError,
    TrialNotRunning,
    TrialStopped,
    ValidationError,
)
from thrifty.server._live import LiveStudies
from thrifty.server.tokens import OPEN, Grant, TokenChecker
from thrifty.storage.base import Storage, StudyRecord
from thrifty.trial import Trial, TrialState

T = TypeVar("T")
log = logging.getLogger("thrifty")

#: The most trials one suggest call hands out.
MAX_SUGGEST = 100
#: The reader's client id (users' ids cannot contain ``~``).
READER = "~reader"
CLIENT_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,64}$"

StudyName = Annotated[str, Path(min_length=1, max_length=255, description="the study's name")]
TrialNumber = Annotated[int, Path(ge=0, le=2**31 - 1, description="the trial's number in its study")]
Usd = Annotated[float, Field(ge=0, allow_inf_nan=False, description="dollars")]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False, description="seconds")]
Metrics = float | dict[str, float]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CreateStudy(_Body):
    """A study as a ``thrifty run`` config gives it (the same keys, validated by ``Study.create``)."""

    name: str = Field(min_length=1, max_length=255)
    space: dict[str, Any]
    objective: str | dict[str, str] = "max"
    strategy: str | dict[str, Any] = "auto"
    scheduler: str | dict[str, Any] | None = "auto"
    seed: int = 0
    budget: dict[str, Any] | None = None
    max_retries: int = 0
    heartbeat_grace_s: float = 60.0
    pricing: str | dict[str, Any] | None = None
    resources: dict[str, float] | None = None
    stop_when: list[dict[str, Any]] | dict[str, Any] | None = None
    keep_checkpoints: int | None = 3
    constraints: dict[str, list[Any]] | None = None


class SuggestBody(_Body):
    count: int = Field(1, ge=1, le=MAX_SUGGEST, description="trials wanted")
    client_id: str | None = Field(None, pattern=CLIENT_ID_PATTERN,
                                  description="who runs them (default: a new id, returned); the same id gets its "
                                              "RUNNING trials back first")


class ReportBody(_Body):
    metrics: Metrics = Field(description="a number (the objective) or {metric: number}")
    step: float | None = Field(None, ge=0, allow_inf_nan=False, description="resource used so far (epochs, ...)")
    cost_usd: Usd = 0.0
    elapsed_s: Seconds | None = Field(None, description="seconds since the previous report (default: measured "
                                                        "by the service between calls)")


class CompleteBody(_Body):
    value: Metrics = Field(description="the objective, or {metric: number}")
    cost_usd: Usd = 0.0
    elapsed_s: Seconds | None = None


class InfeasibleBody(_Body):
    reason: str = Field(min_length=1, max_length=10_000)
    metrics: dict[str, float] | None = None
    cost_usd: Usd = 0.0
    elapsed_s: Seconds | None = None


class FailBody(_Body):
    error: str = Field(min_length=1, max_length=100_000)
    cost_usd: Usd = 0.0
    elapsed_s: Seconds | None = None


class StopBody(_Body):
    reason: str | None = Field(None, max_length=10_000)
    cost_usd: Usd = 0.0
    elapsed_s: Seconds | None = None


class HeartbeatBody(_Body):
    trials: list[Annotated[int, Field(ge=0, le=2**31 - 1)]] = Field(max_length=1000)


def jsonable(value: Any) -> Any:
    """``value`` with every non-finite float as the string ``"nan"``, ``"inf"`` or ``"-inf"``
    (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def trial_json(t: Trial, *, measurements: bool = False) -> dict[str, Any]:
    """A trial as the service answers it (its reports only with ``measurements``; without, its
    ``last_step`` is ``None``)."""
    extra = {}
    if measurements:
        extra["measurements"] = [{"step": m.step, "metrics": dict(m.metrics), "cost_usd": m.cost_usd,
                                  "elapsed_s": m.elapsed_s, "timestamp": m.timestamp} for m in t.measurements]
    return jsonable({**extra,
        "number": t.number, "state": t.state.value, "params": dict(t.params), "metrics": dict(t.metrics),
        "cost_usd": t.cost_usd, "elapsed_s": t.elapsed_s, "error": t.error, "reason": t.reason,
        "stop_kind": t.stop_kind.value if t.stop_kind is not None else None, "stop_limit": t.stop_limit,
        "last_step": t.last_step, "worker_id": t.worker_id, "retry_of": t.retry_of,
        "created_at": t.created_at, "started_at": t.started_at, "finished_at": t.finished_at,
    })


def _handed(h: Any) -> dict[str, Any]:
    return jsonable({"number": h.number, "params": dict(h.params), "start_step": h.start_step,
                     "last_step": h.last_step, "retry_of": h.retry_of, "parent": h.parent})


def _verdict(handle: Any) -> dict[str, Any]:
    """Whether the trial should stop, after its report (or alone)."""
    stop = handle.should_stop()
    return {"should_stop": stop, "pausing": bool(handle.pausing),
            "reason": handle.stop_reason, "stop_kind": handle.stop.kind.value if handle.stop is not None else None,
            "stop_limit": handle.stop.limit if handle.stop is not None else None}


def service_router(storage: Storage, *, auth: bool = True) -> APIRouter:
    """The service's routes over ``storage`` (opened for writing); ``auth=False``: no tokens (the
    caller allows that on loopback only)."""
    live = LiveStudies(storage)
    checker = TokenChecker(storage) if auth else None
    bearer = HTTPBearer(auto_error=False, description="a token of `thrifty token create`")
    router = APIRouter()

    def grant(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Grant:
        if checker is None:
            return OPEN
        if credentials is None:
            raise HTTPException(401, "no token: send the header 'Authorization: Bearer <token>' (thrifty token create)",
                                headers={"WWW-Authenticate": "Bearer"})
        found = checker.grant(credentials.credentials)
        if found is None:
            raise HTTPException(401, "the token is unknown, malformed or revoked: create one with thrifty token create",
                                headers={"WWW-Authenticate": "Bearer"})
        return found

    Access = Annotated[Grant, Depends(grant)]

    def opened(who: Grant, name: str, role: str) -> StudyRecord:
        """The study ``name`` if ``who`` may use it with ``role`` (404 if it does not exist or the
        token does not open it, alike; 403 for a role too low)."""
        if not who.opens(name):
            raise HTTPException(404, f"no study named {name!r} (that this token opens)")
        if not who.allows(role):
            raise HTTPException(403, f"this token's role is {who.role!r}; this call needs {role!r} "
                                     f"(thrifty token create --role {role})")
        try:
            return call(lambda: live.record(name))
        except HTTPException as exc:
            if exc.status_code == 404:  # the same words as for a study the token does not open
                raise HTTPException(404, f"no study named {name!r} (that this token opens)") from None
            raise

    def on_study(name: str, fn: Callable[[], T]) -> T:
        """``call(fn)`` for study ``name``: a study found missing is forgotten, then 404."""
        try:
            return fn()
        except StudyNotFound:
            live.drop(name)
            raise

    def reader(record: StudyRecord) -> Any:
        return live.client(record.id, record.name, READER)

    def on_trial(who: Grant, name: str, number: int, action: Callable[[Any, Any], T]) -> T:
        record = opened(who, name, "write")
        return call(lambda: on_study(name, lambda: live.on_trial(record.id, record.name, number, action)))

    # -- studies ----------------------------------------------------------------------------------
    @router.get("/studies", summary="the studies this token opens")
    def list_studies(who: Access) -> dict[str, Any]:
        rows = call(storage.list_studies)
        return {"studies": [jsonable({"name": s.name, "objectives": dict(s.objectives), "counts": dict(s.counts),
                                      "spent_usd": s.spent_usd, "created_at": s.created_at})
                            for s in rows if who.opens(s.name)]}

    @router.post("/studies", status_code=201, summary="create a study (admin)")
    def create_study(body: CreateStudy, who: Access) -> dict[str, Any]:
        if not who.opens(body.name):
            raise HTTPException(403, f"this token opens study {who.study!r} only: it cannot create {body.name!r}")
        if not who.allows("admin"):
            raise HTTPException(403, f"creating a study needs an admin token; this one's role is {who.role!r}")
        import thrifty as th

        settings = body.model_dump(exclude={"name", "space", "objective"}, exclude_unset=True)

        def create() -> Any:
            try:
                return th.Study.create(body.space, body.objective, name=body.name, storage=storage, **settings)
            except (TypeError, ValueError, KeyError) as exc:  # a value of the wrong kind deep in a setting
                raise ValidationError(f"invalid study: {exc}") from None

        return summary(call(create))

    @router.get("/studies/{name}", summary="a study: settings, counts, spend")
    def get_study(name: StudyName, who: Access) -> dict[str, Any]:
        record = opened(who, name, "read")
        client = reader(record)
        return call(lambda: on_study(name, lambda: client.run(lambda: summary(client.study))))

    @router.delete("/studies/{name}", summary="delete a study and its trials (admin)")
    def delete_study(name: StudyName, who: Access) -> dict[str, Any]:
        opened(who, name, "admin")
        call(lambda: on_study(name, lambda: storage.delete_study(name)))
        live.drop(name)
        return {"deleted": name}

    # -- running trials ---------------------------------------------------------------------------
    @router.post("/studies/{name}/suggest", summary="trials to run: the client's RUNNING ones first, then new")
    def suggest(name: StudyName, body: SuggestBody, who: Access) -> dict[str, Any]:
        record = opened(who, name, "write")
        client_id = body.client_id or uuid.uuid4().hex
        got = call(lambda: on_study(name, lambda: live.suggest(record.id, record.name, client_id, body.count)))
        exhausted = None
        if got.exhausted is not None:
            exhausted = {"reason": got.exhausted.reason, "message": str(got.exhausted)}
        grace = jsonable(record.settings.get("heartbeat_grace_s"))
        return {"client_id": client_id, "trials": [_handed(h) for h in got.handles], "exhausted": exhausted,
                "heartbeat_grace_s": grace}

    @router.post("/studies/{name}/heartbeat", summary="keep trials alive (any call about a trial also does)")
    def heartbeat(name: StudyName, body: HeartbeatBody, who: Access) -> dict[str, Any]:
        record = opened(who, name, "write")
        wanted = set(body.trials)
        running = [t for t in call(lambda: storage.get_trials(record.id, [TrialState.RUNNING],
                                                              with_measurements=False)) if t.number in wanted]
        client = reader(record)
        if running:
            call(lambda: storage.heartbeat([t.id for t in running if t.id is not None], client.study.clock.time()))
        return {"running": sorted(t.number for t in running)}

    @router.post("/studies/{name}/trials/{number}/report", summary="record a measurement; answers whether to stop")
    def report(name: StudyName, number: TrialNumber, body: ReportBody, who: Access) -> dict[str, Any]:
        def act(_: Any, handle: Any) -> dict[str, Any]:
            try:
                handle.report(body.metrics, body.step, cost_usd=body.cost_usd, elapsed_s=body.elapsed_s)
            except TrialStopped:
                pass  # recorded; handle.stop says why
            return _verdict(handle)

        return on_trial(who, name, number, act)

    @router.post("/studies/{name}/trials/{number}/should-stop", summary="whether the trial should stop now")
    def should_stop(name: StudyName, number: TrialNumber, who: Access) -> dict[str, Any]:
        return on_trial(who, name, number, lambda study, handle: (study.heartbeat([handle]), _verdict(handle))[1])

    @router.post("/studies/{name}/trials/{number}/complete", summary="the trial's result (COMPLETED, or INFEASIBLE "
                                                                     "when it breaks a constraint)")
    def complete(name: StudyName, number: TrialNumber, body: CompleteBody, who: Access) -> dict[str, Any]:
        return on_trial(who, name, number, lambda study, handle: trial_json(
            study.tell(handle, body.value, cost_usd=body.cost_usd, elapsed_s=body.elapsed_s)))

    @router.post("/studies/{name}/trials/{number}/infeasible", summary="the trial cannot be evaluated (and why)")
    def infeasible(name: StudyName, number: TrialNumber, body: InfeasibleBody, who: Access) -> dict[str, Any]:
        return on_trial(who, name, number, lambda study, handle: trial_json(
            study.tell(handle, body.metrics, state=TrialState.INFEASIBLE, error=body.reason, cost_usd=body.cost_usd,
                       elapsed_s=body.elapsed_s)))

    @router.post("/studies/{name}/trials/{number}/fail", summary="the trial failed (its error text)")
    def fail(name: StudyName, number: TrialNumber, body: FailBody, who: Access) -> dict[str, Any]:
        return on_trial(who, name, number, lambda study, handle: trial_json(
            study.tell(handle, state=TrialState.FAILED, error=body.error, cost_usd=body.cost_usd,
                       elapsed_s=body.elapsed_s)))

    @router.post("/studies/{name}/trials/{number}/stop", summary="end the trial early with its last report "
                                                                 "(PAUSED if the scheduler paused it)")
    def stop(name: StudyName, number: TrialNumber, body: StopBody, who: Access) -> dict[str, Any]:
        def act(study: Any, handle: Any) -> dict[str, Any]:
            state = TrialState.PAUSED if handle.pausing else TrialState.STOPPED
            return trial_json(study.tell(handle, state=state, reason=body.reason, cost_usd=body.cost_usd,
                                         elapsed_s=body.elapsed_s))

        return on_trial(who, name, number, act)

    # -- reading ----------------------------------------------------------------------------------
    @router.get("/studies/{name}/trials", summary="the study's trials in number order, a page at a time")
    def trials(name: StudyName, who: Access, state: Annotated[TrialState | None, Query()] = None,
               offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        record = opened(who, name, "read")
        client = reader(record)
        found = call(lambda: client.study.get_trials([state] if state else None, with_measurements=False,
                                                     offset=offset, limit=limit))
        return {"trials": [trial_json(t) for t in found]}

    @router.get("/studies/{name}/trials/{number}", summary="one trial")
    def trial(name: StudyName, number: TrialNumber, who: Access) -> dict[str, Any]:
        record = opened(who, name, "read")
        client = reader(record)
        found = call(lambda: client.study.get_trials(offset=number, limit=1))
        if not found or found[0].number != number:
            raise HTTPException(404, f"study {name!r} has no trial {number}")
        return trial_json(found[0], measurements=True)

    @router.get("/studies/{name}/best", summary="the best trial (several objectives: the Pareto front)")
    def best(name: StudyName, who: Access) -> dict[str, Any]:
        record = opened(who, name, "read")
        study = reader(record).study
        if study.is_multi_objective:
            return {"best": None, "pareto_front": [trial_json(t) for t in call(study.pareto_front)]}
        ranked = call(study.ranked)
        return {"best": trial_json(ranked[0]) if ranked else None}

    @router.get("/studies/{name}/budget", summary="the budget: limits, spent, left")
    def budget(name: StudyName, who: Access) -> dict[str, Any]:
        record = opened(who, name, "read")
        study = reader(record).study

        def read() -> dict[str, Any]:
            limits, usage, stop = study.budget, study.usage(), study.budget_stop
            left = {k: max(getattr(limits, k) - getattr(usage, k), 0.0)
                    for k in ("trials", "usd", "gpu_hours", "wall_s") if getattr(limits, k) is not None}
            return jsonable({
                "budget": limits.to_dict(), "spent_usd": usage.usd,
                "used": {"trials": usage.trials, "usd": usage.usd, "gpu_hours": usage.gpu_hours,
                         "wall_s": usage.wall_s},
                "left": left,
                "budget_stop": None if stop is None else {"limit": stop.limit, "message": stop.message, "at": stop.at},
            })

        return call(read)

    @router.get("/studies/{name}/ledger", summary="where the money went: thrifty report as JSON")
    def ledger(name: StudyName, who: Access) -> dict[str, Any]:
        from thrifty.analysis.report import cost_report

        record = opened(who, name, "read")
        client = reader(record)
        return jsonable(call(lambda: client.run(lambda: cost_report(client.study).to_dict())))

    return router


def summary(study: Any) -> dict[str, Any]:
    """A study as ``GET /studies/{name}`` answers it."""
    counts = {s.value: n for s, n in study.counts().items()}
    return jsonable({
        "name": study.name, "objectives": dict(study.objectives), "space": study.space.to_dict(),
        "strategy": study.strategy.to_spec(),
        "budget": study.budget.to_dict(), "spent_usd": study.cost_usd, "counts": counts,
        "heartbeat_grace_s": study.heartbeat_grace_s, "max_retries": study.max_retries,
    })


def call(fn: Callable[[], T]) -> T:
    """``fn()``, its thrifty errors turned into the HTTP answers of the module docstring."""
    from thrifty.errors import StorageError

    try:
        return fn()
    except StudyNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except (DuplicateStudy, TrialNotRunning) as exc:
        raise HTTPException(409, str(exc)) from None
    except StorageError as exc:  # its words name the storage's URL: logged here, not sent
        log.warning("thrifty serve: storage error: %s", exc)
        raise HTTPException(503, "the service's storage cannot be reached or used now: try again later "
                                 "(the service's log says why)") from None
    except ThriftyError as exc:  # invalid values (thrifty's validation), a study exhausted
        raise HTTPException(422, f"{exc}".splitlines()[0] if str(exc) else type(exc).__name__) from None
