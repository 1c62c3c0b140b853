"""Bearer tokens of the HTTP service (``thrifty token create``, ``thrifty serve``).

Contract:

- **Shape.** A token reads ``thr_<id>_<secret>``: ``id`` is 12 hex digits, public (it names the
  token in ``thrifty token list`` and ``revoke``); ``secret`` is 32 random bytes (``secrets``),
  URL-safe base64. It is printed once, when created, and never stored.
- **Stored hashed.** The storage keeps the id, the SHA-256 of the secret (hex), the study and the
  role (:class:`~thrifty.storage.base.TokenRecord`, the ``thrifty_tokens`` table on SQLite and
  PostgreSQL). A presented token is checked by its id's record and a constant-time comparison of
  digests (:func:`hmac.compare_digest`). A plain hash is enough: the secret is random, not a
  password, so there is nothing to guess from its digest.
- **One study, one role.** A token opens the one study it was created for, by name (it may be
  created before the study exists and outlives its deletion): ``read`` reads it, ``write`` also
  runs its trials (suggest, report, complete, ...), ``admin`` also creates and deletes it.
- **Revoked** tokens are refused from the next check; the service remembers a checked token for
  :data:`CHECK_TTL_S` seconds, so a revocation takes effect within that time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass

from thrifty.errors import ValidationError
from thrifty.storage.base import Storage, TokenRecord

#: The roles, each including the rights of those before it.
ROLES = ("read", "write", "admin")
PREFIX = "thr"
_SHAPE = re.compile(r"^thr_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")
#: Seconds a token checked against the storage is trusted without reading it again.
CHECK_TTL_S = 5.0


@dataclass(frozen=True)
class Grant:
    """What a request may do: ``study`` (``None``: every study, the service's ``--no-auth``) with
    ``role``; ``token_id`` names the token (``None`` without authentication)."""

    study: str | None
    role: str
    token_id: str | None = None

    def allows(self, role: str) -> bool:
        """Whether this grant's role includes ``role``."""
        return ROLES.index(self.role) >= ROLES.index(role)

    def opens(self, study: str) -> bool:
        """Whether this grant reaches study ``study`` at all."""
        return self.study is None or self.study == study


#: The grant of a service started with ``--no-auth`` (loopback only).
OPEN = Grant(study=None, role="admin")


def check_role(role: str) -> str:
    """``role`` if it is one of :data:`ROLES`, else a one-line :class:`ValidationError`."""
    if role not in ROLES:
        raise ValidationError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    return role


def digest(secret: str) -> str:
    """The stored form of a token's secret: SHA-256, hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_token(storage: Storage, study: str, role: str, now: float | None = None) -> tuple[str, TokenRecord]:
    """A new token for ``study`` with ``role``: the token (to print once) and its stored record."""
    if not isinstance(study, str) or not study.strip() or len(study) > 255:
        raise ValidationError(f"study {study!r}: a study name is a non-empty string of at most 255 characters")
    check_role(role)
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    record = TokenRecord(id=token_id, study=study, role=role, digest=digest(secret),
                         created_at=time.time() if now is None else float(now))
    storage.add_token(record)
    return f"{PREFIX}_{token_id}_{secret}", record


class TokenChecker:
    """Turns a presented bearer token into a :class:`Grant` (or ``None``: unknown, malformed or
    revoked), reading the storage at most once per token every :data:`CHECK_TTL_S` seconds."""

    def __init__(self, storage: Storage, ttl_s: float = CHECK_TTL_S) -> None:
        self.storage = storage
        self.ttl_s = float(ttl_s)
        self._lock = threading.Lock()
        self._recent: dict[str, tuple[float, Grant | None]] = {}

    def grant(self, token: str) -> Grant | None:
        match = _SHAPE.match(token)
        if match is None:
            return None
        key = digest(token)  # the cache holds no token either
        now = time.monotonic()
        with self._lock:
            hit = self._recent.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        found = self._check(match.group(1), match.group(2))
        with self._lock:
            if len(self._recent) > 10_000:
                self._recent.clear()
            self._recent[key] = (now + self.ttl_s, found)
        return found

    def _check(self, token_id: str, secret: str) -> Grant | None:
        record = self.storage.get_token(token_id)
        if record is None or record.revoked_at is not None:
            return None
        if not hmac.compare_digest(record.digest, digest(secret)):
            return None
        return Grant(study=record.study, role=record.role, token_id=record.id)
