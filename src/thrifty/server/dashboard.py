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
- **Metrics**: ``/metrics`` in Prometheus' text format, read from the storage at each scrape:
  trials by state, best value, dollars spent and budget left per study
  (:mod:`thrifty.server.metrics`).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from thrifty.errors import NotEnoughData, StudyNotFound, ThriftyError, ValidationError
from thrifty.server import _data
from thrifty.server._pages import INDEX_HTML, STUDY_HTML
from thrifty.storage.base import Storage

POLL_MS = 2000


def _figure_makers() -> dict[str, Callable[..., Any]]:
    import thrifty.plot as tp

    return {
        "best_vs_cost": tp.best_vs_cost, "history": tp.optimization_history, "curves": tp.intermediate_values,
        "parallel": tp.parallel_coordinate, "importance": tp.param_importances, "pareto": tp.pareto_front,
        "burndown": tp.budget_burndown, "spend": tp.spend_by_state,
    }


def plotly_js_path() -> Path:
    """The plotly.js bundled with the installed plotly package."""
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


def create_app(storage: Storage) -> Any:
    """The dashboard app over ``storage`` (open it read-only: ``open_storage(url, read_only=True)``)."""
    from fastapi import FastAPI, HTTPException, Query
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

    import thrifty as th
    from thrifty.server.metrics import render_metrics

    app = FastAPI(title="thrifty dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    makers = _figure_makers()

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
                "version": _data.version(storage, name), "figures": _kinds(s)}

    @app.get("/api/studies/{name}/figures/{kind}")
    def api_figure(name: str, kind: str) -> Response:
        if kind not in makers:
            raise HTTPException(404, f"no figure {kind!r}; known: {', '.join(makers)}")
        s = study(name)
        try:
            fig = makers[kind](s)
        except (NotEnoughData, ValidationError) as exc:
            return JSONResponse({"message": str(exc)})
        except ThriftyError as exc:
            return JSONResponse({"message": str(exc)})
        return Response(content='{"figure": ' + fig.to_json() + "}", media_type="application/json")

    @app.get("/api/studies/{name}/trials")
    def api_trials(name: str, offset: int = Query(0), limit: int = Query(50), sort: str = Query("number"),
                   desc: bool = Query(False)) -> dict[str, Any]:
        return guarded(lambda: _data.trial_page(storage, name, offset=offset, limit=limit, sort=sort, desc=desc))

    @app.get("/api/studies/{name}/trials/{number}")
    def api_trial(name: str, number: int) -> dict[str, Any]:
        detail = guarded(lambda: _data.trial_detail(storage, name, number))
        if detail is None:
            raise HTTPException(404, f"study {name!r} has no trial {number}")
        return detail

    @app.get("/metrics")
    def metrics() -> Response:
        body, content_type = render_metrics(storage)
        return Response(content=body, media_type=content_type)

    return app


def _kinds(study: Any) -> list[str]:
    """The pictures that fit the study, in page order."""
    if len(study.objectives) == 1:
        return ["best_vs_cost", "curves", "parallel", "importance", "burndown", "spend", "history"]
    return ["pareto", "curves", "burndown", "spend"]


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def _json_str(text: str) -> str:
    import json

    # Inside a <script>: JSON, with "<" escaped so a name cannot close the tag.
    return json.dumps(text).replace("<", "\\u003c")
