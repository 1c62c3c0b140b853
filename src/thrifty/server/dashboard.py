"""The dashboard: a read-only FastAPI app over a study storage (``thrifty dashboard``).

Contract:

- **Read-only.** The storage is opened read-only (nothing is created: a missing SQLite file is an
  error, not an empty database) and every request reads in the storage's own short transactions,
  so workers writing to the same database are never blocked for longer than one read.
- **Offline.** plotly.js is served from the installed plotly package (``/static/plotly.min.js``);
  the pages fetch nothing from the internet.
- **Live.** A study page polls ``/api/studies/{name}/version`` (trial counts by state and dollars
  spent) every ``POLL_MS`` and redraws when it changed: a running study updates without a reload.
- **Pictures** are :mod:`thrifty.plot`'s figures, sent as plotly JSON
  (``/api/studies/{name}/figures/{kind}``); one that cannot be drawn yet (too few trials) answers
  with the reason instead.
- **Trials** are paged and sorted on the server (``/api/studies/{name}/trials``); a trial's detail
  (params, curve, cost, error tail, parent for PBT) is ``/api/studies/{name}/trials/{number}``.
- **Start-up**: every study is read and its pictures drawn once in a background thread when the
  server starts (``/api/status`` says when that is done); a page opened meanwhile waits for its
  study's read.
- **Metrics**: ``/metrics`` in Prometheus' text format, read from the storage at each scrape:
  trials by state, best value, dollars spent and budget left per study
  (:mod:`thrifty.server.metrics`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from thrifty.errors import StudyNotFound, ThriftyError, ValidationError
from thrifty.server import _data
from thrifty.server._pages import INDEX_HTML, STUDY_HTML
from thrifty.storage.base import Storage

POLL_MS = 2000
#: The learning-curves picture draws the latest this many trials (their reports read on each draw).
CURVES_MAX_TRIALS = 1000


class _Readers:
    """One :class:`~thrifty.study.Study` per name, read incrementally without measurements
    (``history(with_measurements=False)`` fetches only the trials that are unfinished or finished
    since the previous read: finished trials never change), so redrawing a 100,000-trial study
    reads what changed, not everything. One lock per study (a reader is not shared between threads
    while it reads)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._lock = threading.Lock()
        self._studies: dict[str, tuple[Any, threading.Lock]] = {}
        self._memo: dict[tuple[str, Any], tuple[tuple[Any, ...], Any]] = {}
        #: Seconds the start-up read took (:meth:`warm`); ``None`` while it runs or before it starts.
        self.warm_s: float | None = None

    def read(self, name: str) -> tuple[Any, list[Any]]:
        """The study and its trials as of now, without their measurements."""
        import thrifty as th

        record_id = self.storage.load_study(name).id  # StudyNotFound for an unknown (or deleted) one
        with self._lock:
            entry = self._studies.get(name)
            if entry is None or entry[0].id != record_id:  # new, or deleted and created again
                entry = (th.Study.load(name, storage=self.storage), threading.Lock())
                self._studies[name] = entry
        study, lock = entry
        with lock:
            return study, study.history(with_measurements=False)

    def warm(self) -> None:
        """Read every study and draw its pictures once (at server start, in the background: every
        study's first picture, then the others), so the first page of a large study does not wait
        for its first full read nor for the slow pictures (importance, the cost report)."""
        started = time.monotonic()
        try:
            studies = []
            for summary in self.storage.list_studies():
                try:
                    study, _ = self.read(summary.name)
                except ThriftyError:  # deleted meanwhile
                    continue
                studies.append((summary.name, _kinds(study)))
            for name, kinds in [(n, k[:1]) for n, k in studies] + [(n, k[1:]) for n, k in studies]:
                for kind in kinds:
                    try:
                        self.figure(name, kind)
                    except ThriftyError:  # deleted meanwhile, or too few trials for this picture
                        continue
        finally:  # done, whatever happened (a storage error is the page's to report)
            self.warm_s = time.monotonic() - started

    def figure(self, name: str, kind: str, against: str = "usd") -> str:
        """The JSON body of picture ``kind`` of study ``name`` (``{"figure": ...}``), remembered
        until a trial starts or finishes or the dollars spent change (the curves and the timeline,
        which move while trials run, are drawn at every request). ``against``: the x axis of
        ``best_vs_cost`` (``"usd"`` or ``"trials"``; the page switches between them). Raises what
        the picture raises (a :class:`ThriftyError` the page shows as the reason)."""
        study, trials = self.read(name)
        finished = sum(1 for t in trials if t.state.is_finished)
        version = (len(trials), finished, math.fsum(t.cost_usd for t in trials))
        if kind in ("curves", "timeline"):
            return self._draw(name, kind, study, trials, finished, against)
        return self.memo(name, (f"figure {kind} {against}", *version),
                         lambda: self._draw(name, kind, study, trials, finished, against))

    def _draw(self, name: str, kind: str, study: Any, trials: list[Any], finished: int, against: str) -> str:
        import thrifty.plot as tp

        extra: dict[str, Any] = {}
        if kind == "best_vs_cost":  # the page has its own toggle: the figure stays small
            extra.update(against=against, toggle=False)
        elif kind in ("spend", "burndown"):
            from thrifty.analysis.report import cost_report

            extra["report"] = self.memo(name, ("cost report", finished, len(trials)),
                                        lambda: cost_report(study, trials=trials))
        elif kind == "importance":
            from thrifty.analysis.importance import param_importances

            # Refitted as the completed trials grow by a tenth, not at every trial (a fit takes
            # seconds on thousands of trials).
            step = int(math.log(max(finished, 1)) / math.log(1.1))
            extra["report"] = self.memo(name, ("importance", step), lambda: param_importances(study, trials=trials))
        elif kind == "timeline":
            extra["max_trials"] = CURVES_MAX_TRIALS
        elif kind == "curves":  # the only picture that needs the reports: the latest trials' only
            trials = study.get_trials(offset=max(len(trials) - CURVES_MAX_TRIALS, 0))
            extra["max_trials"] = CURVES_MAX_TRIALS
        fig = getattr(tp, FIGURE_KINDS[kind])(study, trials=trials, **extra)
        return '{"figure": ' + fig.to_json() + "}"

    def best_value(self, name: str) -> float | None:
        """The best counted value of a single-objective study (``None``: none yet), from the
        incremental read."""
        from thrifty.ranking import rank

        study, trials = self.read(name)
        ranked = rank(trials, study.objectives, study.constraints)
        if not ranked:
            return None
        return float(ranked[0].metrics[next(iter(study.objectives))])

    def memo(self, name: str, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        """``make()``, remembered for ``name`` while ``key`` stays the same (e.g. the cost report
        while no trial finishes: the spend and burn-down pictures share it)."""
        with self._lock:
            hit = self._memo.get((name, key[0]))
        if hit is not None and hit[0] == key:
            return hit[1]
        value = make()
        with self._lock:
            self._memo[(name, key[0])] = (key, value)
        return value


#: The dashboard's pictures: kind (in the URL) -> :mod:`thrifty.plot` function.
FIGURE_KINDS: dict[str, str] = {
    "best_vs_cost": "best_vs_cost", "history": "optimization_history", "curves": "intermediate_values",
    "parallel": "parallel_coordinate", "importance": "param_importances", "pareto": "pareto_front",
    "burndown": "budget_burndown", "spend": "spend_by_state", "timeline": "timeline",
}


def plotly_js_path() -> Path:
    """The plotly.js bundled with the installed plotly package."""
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


def create_app(storage: Storage, *, warm: bool = True) -> Any:
    """The dashboard app over ``storage`` (open it read-only: ``open_storage(url, read_only=True)``).
    ``warm``: read every study once in a background thread when the server starts."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, HTTPException, Query
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

    import thrifty as th
    from thrifty.server.metrics import render_metrics

    readers = _Readers(storage)

    @asynccontextmanager
    async def lifespan(_: Any) -> Any:
        if warm:
            threading.Thread(target=readers.warm, name="thrifty-dashboard-warm", daemon=True).start()
        yield

    app = FastAPI(title="thrifty dashboard", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)

    def study(name: str) -> th.Study:
        try:
            return th.Study.load(name, storage=storage)
        except StudyNotFound as exc:
            raise HTTPException(404, str(exc)) from None

    def guarded(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except StudyNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except ValidationError as exc:
            raise HTTPException(400, str(exc)) from None

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return INDEX_HTML.replace("{{storage}}", _escape(storage.url))

    @app.get("/study/{name}", response_class=HTMLResponse)
    def study_page(name: str) -> str:
        study(name)  # 404 for an unknown study
        return STUDY_HTML.replace("{{name_json}}", _json_str(name)).replace("{{name}}", _escape(name)).replace(
            "{{poll_ms}}", str(POLL_MS))

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/static/plotly.min.js")
    def plotly_js() -> FileResponse:
        return FileResponse(plotly_js_path(), media_type="application/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/api/status")
    def api_status() -> dict[str, Any]:
        """Whether the start-up read of every study (and its pictures) is done, and how long it took."""
        return {"warm": readers.warm_s is not None, "warm_s": readers.warm_s}

    @app.get("/api/studies")
    def api_studies() -> list[dict[str, Any]]:
        return _data.studies(storage)

    @app.get("/api/studies/{name}/version")
    def api_version(name: str) -> dict[str, Any]:
        return guarded(lambda: _data.version(storage, name))

    @app.get("/api/studies/{name}/summary")
    def api_summary(name: str) -> dict[str, Any]:
        s = study(name)
        return {"name": s.name, "objectives": dict(s.objectives), "budget": _data.budget_of(storage, name),
                "version": _data.version(storage, name), "figures": _kinds(s), "memo_cache": _data.memo_cache(s)}

    @app.get("/api/studies/{name}/figures/{kind}")
    def api_figure(name: str, kind: str, against: str = Query("usd")) -> Response:
        if kind not in FIGURE_KINDS:
            raise HTTPException(404, f"no figure {kind!r}; known: {', '.join(FIGURE_KINDS)}")
        if against not in ("usd", "trials"):
            raise HTTPException(400, f"against={against!r}: expected 'usd' or 'trials'")
        try:
            body = readers.figure(name, kind, against)
        except StudyNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except ThriftyError as exc:  # e.g. too few trials for importance: the page shows why
            return JSONResponse({"message": str(exc)})
        return Response(content=body, media_type="application/json")

    @app.get("/api/studies/{name}/trials")
    def api_trials(name: str, offset: int = Query(0), limit: int = Query(50), sort: str = Query("number"),
                   desc: bool = Query(False)) -> dict[str, Any]:
        return guarded(lambda: _data.trial_page(storage, name, offset=offset, limit=limit, sort=sort, desc=desc,
                                                every=lambda: readers.read(name)[1]))

    @app.get("/api/studies/{name}/trials/{number}")
    def api_trial(name: str, number: int) -> dict[str, Any]:
        detail = guarded(lambda: _data.trial_detail(storage, name, number))
        if detail is None:
            raise HTTPException(404, f"study {name!r} has no trial {number}")
        return detail

    @app.get("/metrics")
    def metrics() -> Response:
        body, content_type = render_metrics(storage, best_value=readers.best_value)
        return Response(content=body, media_type=content_type)

    return app


def _kinds(study: Any) -> list[str]:
    """The pictures that fit the study, in page order."""
    if len(study.objectives) == 1:
        return ["best_vs_cost", "curves", "parallel", "importance", "burndown", "spend", "timeline", "history"]
    return ["pareto", "curves", "burndown", "spend", "timeline"]


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def _json_str(text: str) -> str:
    import json

    # Inside a <script>: JSON, with "<" escaped so a name cannot close the tag.
    return json.dumps(text).replace("<", "\\u003c")
