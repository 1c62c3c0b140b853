"""Bearer tokens in the storage (memory, a SQLite file, PostgreSQL): only their hash is kept, a
token is found by its id and checked in constant time, revoked ones are refused."""

from __future__ import annotations

import pytest

from thrifty.errors import ValidationError
from thrifty.server.tokens import TokenChecker, create_token, digest
from thrifty.storage import open_storage


@pytest.fixture(params=["memory", "file"])
def storage_url(request, db_url):
    return "memory" if request.param == "memory" else db_url


def test_a_token_is_stored_hashed_checked_and_revoked(storage_url):
    store = open_storage(storage_url)
    token, record = create_token(store, "study-a", "write", now=100.0)
    secret = token.split("_", 2)[2]
    stored = store.get_token(record.id)
    assert stored == record and stored.digest == digest(secret) and secret not in repr(stored)
    checker = TokenChecker(store, ttl_s=0.0)
    grant = checker.grant(token)
    assert grant is not None and (grant.study, grant.role) == ("study-a", "write")
    assert grant.allows("read") and grant.allows("write") and not grant.allows("admin")
    assert grant.opens("study-a") and not grant.opens("study-b")
    assert checker.grant(token[:-1] + ("A" if token[-1] != "A" else "B")) is None  # a wrong secret
    assert checker.grant("thr_000000000000_" + secret) is None  # an unknown id
    assert checker.grant("Bearer " + token) is None  # malformed
    other, _ = create_token(store, "study-b", "admin", now=101.0)
    assert [t.study for t in store.list_tokens()] == ["study-a", "study-b"]
    assert [t.id for t in store.list_tokens("study-b")] == [other.split("_")[1]]
    assert store.revoke_token(record.id, 200.0) and not store.revoke_token(record.id, 201.0)
    assert store.get_token(record.id).revoked_at == 200.0
    assert checker.grant(token) is None and checker.grant(other) is not None


def test_bad_token_arguments_are_one_line_errors(tmp_path):
    store = open_storage(f"sqlite:///{tmp_path / 't.db'}")
    with pytest.raises(ValidationError, match="role 'owner'"):
        create_token(store, "s", "owner")
    with pytest.raises(ValidationError, match="study name"):
        create_token(store, "", "read")
    assert store.list_tokens() == []


def test_a_database_made_before_tokens_gets_their_table_when_opened_for_writing(db_url):
    import sqlalchemy as sa

    open_storage(db_url).close()
    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE thrifty_tokens"))  # as a database written before them
    engine.dispose()
    store = open_storage(db_url)
    token, record = create_token(store, "s", "read")
    assert TokenChecker(store).grant(token) is not None and store.list_tokens() == [record]
