"""The ``thrifty serve`` and ``thrifty token`` commands (their parsers are added to
:mod:`thrifty.cli`'s by :func:`add_parsers`).

``thrifty serve --storage URL [--host 127.0.0.1] [--port 8787] [--no-auth]``: the HTTP service
(:mod:`thrifty.server.app`). ``--no-auth`` is refused unless the host is a loopback address.

``thrifty token create --storage URL --study NAME --role read|write|admin`` prints a new bearer
token once (only its hash is stored); ``thrifty token list [--study NAME]`` shows the tokens' ids,
studies, roles and dates (never a secret); ``thrifty token revoke ID`` ends one.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

from thrifty.errors import ValidationError
from thrifty.storage.base import Storage

DEFAULT_PORT = 8787
#: PostgreSQL connections the service keeps open (see :func:`serving_storage`).
POOL_SIZE = int(os.environ.get("THRIFTY_SERVE_POOL_SIZE", "8"))


def cmd_serve(args: argparse.Namespace) -> int:
    from thrifty.server.app import API_PREFIX, check_no_auth

    if not 0 < args.port < 65536:
        raise ValidationError(f"--port {args.port}: expected a port from 1 to 65535")
    if args.no_auth:
        check_no_auth(args.host)
    try:
        import uvicorn

        from thrifty.server.app import create_service_app
    except ImportError as exc:
        raise ValidationError(f"thrifty serve needs its server packages ({exc.name} is missing): "
                              "pip install 'thrifty[dashboard]'") from None
    url = args.storage_of(args)
    store = serving_storage(url)
    app = create_service_app(store, auth=not args.no_auth, threads=int(os.environ.get("THRIFTY_SERVE_THREADS", "8")))
    access = "no authentication (loopback), dashboard at /" if args.no_auth else "bearer tokens"
    print(f"thrifty serve: http://{args.host}:{args.port}{API_PREFIX} (storage {url}; {access}; "
          f"OpenAPI at /openapi.json); Ctrl-C to stop", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=3,
                backlog=2048)
    return 0


def serving_storage(url: str) -> Storage:
    """``url`` opened for writing, with :data:`POOL_SIZE` PostgreSQL connections kept open: the
    service's threads share one storage (with the default 2, connections were opened and closed
    again on every call under 32 clients)."""
    from thrifty.storage import open_storage
    from thrifty.storage.sql import SQLStorage, normalize_url

    if not normalize_url(url).startswith("postgresql"):
        return open_storage(url)
    return SQLStorage(url, pool_size=POOL_SIZE)


def cmd_token(args: argparse.Namespace) -> int:
    from thrifty.server.tokens import create_token
    from thrifty.storage import open_storage

    store = open_storage(args.storage_of(args))
    if args.token_command == "create":
        token, record = create_token(store, args.study, args.role)
        print(token)
        import sys

        print(f"token {record.id}: role {record.role} on study {record.study!r} (shown once; only its hash is stored)",
              file=sys.stderr)
        return 0
    if args.token_command == "list":
        rows = store.list_tokens(args.study)
        for t in rows:
            state = f"revoked {_when(t.revoked_at)}" if t.revoked_at is not None else "valid"
            print(f"{t.id}  {t.role:<5}  {t.study}  created {_when(t.created_at)}  {state}")
        if not rows:
            print("no tokens")
        return 0
    if not store.revoke_token(args.token_id, time.time()):
        raise ValidationError(f"no valid token with id {args.token_id!r}: see thrifty token list")
    print(f"revoked token {args.token_id} (the service refuses it within seconds)")
    return 0


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def add_parsers(sub: Any, common: argparse.ArgumentParser, storage_of: Callable[[argparse.Namespace], str]) -> None:
    """Add ``serve`` and ``token`` to the ``thrifty`` command's subparsers; ``storage_of``: the
    storage URL a command's arguments name (``thrifty.cli.storage_url``)."""
    from thrifty.server.tokens import ROLES

    p = sub.add_parser("serve", parents=[common],
                       help="the HTTP ask/tell service: any language runs a study's trials (docs/service.md)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--no-auth", action="store_true",
                   help="no tokens (and the dashboard at /): allowed on a loopback --host only")
    p.set_defaults(func=cmd_serve, storage_of=storage_of)

    p = sub.add_parser("token", parents=[common], help="bearer tokens of thrifty serve: create, list, revoke")
    tokens = p.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    c = tokens.add_parser("create", parents=[common], help="print a new token once (only its hash is stored)")
    c.add_argument("--study", required=True, help="the study it opens (it may not exist yet)")
    c.add_argument("--role", required=True, choices=ROLES,
                   help="read: read it; write: also run its trials; admin: also create and delete it")
    c.set_defaults(func=cmd_token, storage_of=storage_of)
    c = tokens.add_parser("list", parents=[common], help="the tokens: id, role, study, dates (never a secret)")
    c.add_argument("--study", default=None, help="only this study's")
    c.set_defaults(func=cmd_token, storage_of=storage_of)
    c = tokens.add_parser("revoke", parents=[common], help="end a token (by its id, from thrifty token list)")
    c.add_argument("token_id", metavar="ID")
    c.set_defaults(func=cmd_token, storage_of=storage_of)
