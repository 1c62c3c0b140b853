"""thrifty's HTTP server: the read-only dashboard and its ``/metrics`` (``thrifty dashboard``)."""

from thrifty.server.dashboard import create_app

__all__ = ["create_app"]
