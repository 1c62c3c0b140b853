"""The Ray cluster a ``backend="ray"`` run uses: joining it, and what it must offer the study.

Rules (each a one-line :class:`~thrifty.errors.ValidationError` that says what to change, raised
before any trial starts and before anything is written):

- ``address``: ``"auto"`` (the cluster this machine's ``ray start`` began, or ``RAY_ADDRESS``) or
  ``"HOST:PORT"`` (the head node's GCS port, 6379 by default). A ``HOST:PORT`` that accepts no TCP
  connection within :data:`CONNECT_TIMEOUT_S` is refused at once (Ray itself would wait for
  minutes); ``None`` starts a private single-machine cluster for this run (``ray.init()``).
- Storage: every node opens the study itself, so the storage must be one they all reach:
  PostgreSQL, or a SQLite file when every node of the cluster is this machine. ``"memory"`` is
  refused always, SQLite when a node has another address (the error names them).
- Resources: a trial holds ``num_cpus = resources["cpu"]`` (1 when the study gives none: Ray's
  default for a task) and ``num_gpus = resources["gpu"]`` (a fraction below 1 shares a GPU; more
  than one must be whole). A trial needing more of a resource than the whole cluster has is
  refused (Ray would queue it forever).
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Mapping
from typing import Any

from thrifty.errors import ValidationError

log = logging.getLogger("thrifty")

#: Seconds a ``HOST:PORT`` address has to accept a TCP connection before the run is refused.
CONNECT_TIMEOUT_S = 5.0
#: Storage URLs that live in one process only.
_PROCESS_LOCAL = ("memory", ":memory:", "sqlite://")
#: Backends ``optimize`` knows.
BACKENDS = ("local", "ray")


def check_backend(backend: Any, address: Any) -> None:
    """Validate ``optimize``'s ``backend`` and ``address`` (no Ray needed)."""
    if backend not in BACKENDS:
        raise ValidationError(f"backend={backend!r}: expected one of {', '.join(map(repr, BACKENDS))}")
    if address is None:
        return
    if backend != "ray":
        raise ValidationError(f"address={address!r} is for backend='ray' (this run's backend is {backend!r})")
    if not isinstance(address, str) or not address:
        raise ValidationError(f"address={address!r}: expected 'auto' or 'HOST:PORT' of the Ray head node")
    if address != "auto":
        _host_port(address)


def _host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValidationError(f"address={address!r}: expected 'auto' or 'HOST:PORT' of the Ray head node "
                              "(e.g. '10.0.0.5:6379')")
    return host, int(port)


def check_storage_url(url: str) -> None:
    """Refuse a storage that Ray's worker processes cannot open (see the module docstring)."""
    if url in _PROCESS_LOCAL:
        raise ValidationError(f"backend='ray' runs trials in Ray's worker processes, which cannot see storage {url!r}: "
                              "use PostgreSQL (or sqlite:///FILE when the Ray cluster is this machine)")


def import_ray() -> Any:
    """The ``ray`` package, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ValidationError("backend='ray' needs Ray: pip install 'thrifty[ray]'") from None
    return ray


def connect(address: str | None) -> Any:
    """Join (or, with ``address=None``, start) the Ray cluster; returns the ``ray`` module. A
    process already connected stays on its cluster."""
    ray = import_ray()
    if ray.is_initialized():
        joined = ray.get_runtime_context().gcs_address
        if address not in (None, "auto") and _host_port(address)[1] != _host_port(joined)[1]:
            raise ValidationError(f"address={address!r}: this process is already connected to the Ray cluster at "
                                  f"{joined}; pass that address (or 'auto'), or call ray.shutdown() first")
        return ray
    if address is not None and address != "auto" and not address.startswith("ray://"):
        host, port = _host_port(address)
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as exc:
            raise ValidationError(f"address={address!r}: no Ray head node answers there ({exc.strerror or exc}); "
                                  "start one with `ray start --head`, or pass its HOST:PORT") from None
    if address is None:  # a private cluster: without this Ray writes ~/.ray/auth_token
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False,
                 configure_logging=False, include_dashboard=False if address is None else None)
    except ConnectionError as exc:
        first = (str(exc).strip().splitlines() or ["no cluster found"])[0]
        raise ValidationError(f"address={address!r}: cannot join a Ray cluster ({first}); start one with "
                              "`ray start --head`, or pass its HOST:PORT") from None
    return ray


def check_storage_reach(ray: Any, url: str) -> None:
    """Refuse a SQLite storage when a node of the cluster is another machine."""
    if not url.startswith("sqlite"):
        return
    here = ray.util.get_node_ip_address()
    others = sorted({n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")} - {here})
    if others:
        raise ValidationError(f"storage {url!r} is a SQLite file on this machine ({here}), but the Ray cluster has "
                              f"nodes on {', '.join(others)}: use PostgreSQL, which every node reaches")


def task_options(ray: Any, resources: Mapping[str, float]) -> dict[str, float]:
    """Ray's ``num_cpus``/``num_gpus`` for one trial holding ``resources``, checked against what the
    whole cluster has (see the module docstring)."""
    cpus = float(resources.get("cpu", 1.0))
    gpus = float(resources.get("gpu", 0.0))
    if gpus > 1 and not gpus.is_integer():
        raise ValidationError(f"resources gpu={gpus:g}: more than one GPU must be a whole number (a fraction "
                              "below 1 shares one)")
    total = ray.cluster_resources()
    for key, need, what in (("CPU", cpus, "cpu"), ("GPU", gpus, "gpu")):
        have = float(total.get(key, 0.0))
        if need > have + 1e-9:
            raise ValidationError(f"each trial asks for {need:g} {what.upper()}(s) (resources {what}={need:g}) but "
                                  f"the Ray cluster has {have:g} in all; lower it or add nodes with more")
    return {"num_cpus": cpus, "num_gpus": gpus}


def room(ray: Any, options: Mapping[str, float]) -> int:
    """How many trials with ``options`` the cluster holds at once (its total resources)."""
    total = ray.cluster_resources()
    fits = [math.floor(float(total.get(key, 0.0)) / need + 1e-9)
            for key, need in (("CPU", options["num_cpus"]), ("GPU", options["num_gpus"])) if need > 0]
    return min(fits) if fits else 1 << 30
