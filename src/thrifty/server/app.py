"""The one server app of ``thrifty serve``: the ask/tell service (:mod:`thrifty.server.service`)
under ``/api/v1``, its OpenAPI description at ``/openapi.json``, and, started without
authentication, the dashboard (:mod:`thrifty.server.dashboard`) and its ``/metrics`` at ``/``.

Why the dashboard only without authentication: its pages are read by a browser that sends no
bearer token, and its ``/api/studies`` and ``/metrics`` list every study of the storage, which a
token for one study must not see. With tokens, ``thrifty dashboard`` (read-only, on loopback by
default) stays the way to look at the studies.

Errors: every error answer is JSON ``{"error": "<one line>"}`` (FastAPI's own ``detail`` list is
kept beside it for a body that does not fit the schema, 422).
"""

from __future__ import annotations

import ipaddress
from contextlib import asynccontextmanager
from typing import Any

from thrifty.errors import ValidationError
from thrifty.storage.base import Storage

API_PREFIX = "/api/v1"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) reaches this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_no_auth(host: str) -> None:
    """Refuse ``--no-auth`` on an address other machines can reach (one line)."""
    if not is_loopback(host):
        raise ValidationError(f"--no-auth is allowed on a loopback address only (127.0.0.1, ::1, localhost), "
                              f"not --host {host}: create tokens instead (thrifty token create)")


def create_service_app(storage: Storage, *, auth: bool = True, warm: bool = True, threads: int = 8) -> Any:
    """The app over ``storage`` (opened for writing). ``auth=False``: no tokens, and the
    dashboard served beside the service (call :func:`check_no_auth` for the host first).
    ``warm``: the dashboard's start-up read (see :func:`thrifty.server.dashboard.create_app`).
    ``threads``: calls served at once (each holds a thread while it waits for the storage; more
    threads than the storage has connections only contend for Python's interpreter lock)."""
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    from thrifty import __version__
    from thrifty.server.service import service_router

    dashboard = None
    if not auth:
        from thrifty.server.dashboard import create_app

        dashboard = create_app(storage, warm=warm)

    @asynccontextmanager
    async def lifespan(_: Any) -> Any:
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        if dashboard is None:
            yield
            return
        async with dashboard.router.lifespan_context(dashboard):
            yield

    app = FastAPI(title="thrifty service", version=__version__, openapi_url="/openapi.json", docs_url=None,
                  redoc_url=None, lifespan=lifespan,
                  description="Ask/tell over HTTP: suggest trials, report, complete. Send "
                              "'Authorization: Bearer <token>' (thrifty token create).")

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        return JSONResponse({"error": one_line(errors), "detail": _plain(errors)}, status_code=422)

    app.include_router(service_router(storage, auth=auth), prefix=API_PREFIX)
    if dashboard is not None:
        app.mount("/", dashboard)
    return app


def one_line(errors: list[Any]) -> str:
    """The first of FastAPI's validation errors as one line: where, what is wrong, what was given
    (``body.count: Input should be less than or equal to 100 (got 1000)``), and how many more."""
    if not errors:
        return "invalid request"
    first = errors[0]
    if first.get("type") == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "")
        return f"the body is not valid JSON ({reason}): send a JSON object" if reason else "the body is not valid JSON"
    where = ".".join(str(p) for p in first.get("loc", ())) or "request"
    message = str(first.get("msg", "invalid"))
    text = f"{where}: {message}"
    if "input" in first and first.get("type") != "missing":
        given = repr(first["input"])
        text += f" (got {given[:80] + '...' if len(given) > 80 else given})"
    if len(errors) > 1:
        text += f"; and {len(errors) - 1} more"
    return text.replace("\n", " ")


def _plain(errors: list[Any]) -> list[dict[str, Any]]:
    """The errors as plain JSON (their ``input`` and ``ctx`` may hold values JSON cannot carry)."""
    return [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in errors]
