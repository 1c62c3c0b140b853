"""Shared fixtures: storages (SQLite files, PostgreSQL) and helpers for subprocess tests.

In CI (``CI=true``) a PostgreSQL that can neither be reached nor started is a failure, never a
skip. The default run (``make test``) leaves out the tests marked ``slow`` (statistical checks over
many seeded runs, the larger many-process runs); ``make test-all`` runs them too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import _browser
import _postgres

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: ``make test-all`` sets THRIFTY_TEST_THOROUGH=1: property tests then try more examples.
THOROUGH = os.environ.get("THRIFTY_TEST_THOROUGH", "").lower() in ("1", "true", "yes")


def missing(reason: str) -> None:
    """Skip locally, fail in CI: a real component the tests need is not there."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a missing real component is a failure)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """An admin URL of a reachable PostgreSQL server (the machine's, or a throwaway one)."""
    url = os.environ.get("THRIFTY_TEST_POSTGRES", _postgres.DEFAULT_URL)
    if _postgres.can_connect(url):
        yield url
        return
    if not _postgres.pg_ctl_available():
        missing(f"no PostgreSQL at {url} and no pg_ctl to start one")
    cluster = _postgres.ThrowawayCluster.start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture
def throwaway_cluster() -> Iterator[_postgres.ThrowawayCluster]:
    """A PostgreSQL cluster of this test alone (it may stop or restart it)."""
    if not _postgres.pg_ctl_available():
        missing("pg_ctl/initdb not found: cannot start a throwaway PostgreSQL")
    cluster = _postgres.ThrowawayCluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    url = _postgres.create_database(postgres_server)
    try:
        yield url
    finally:
        _postgres.drop_database(url)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """Each test using this runs on a SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    return request.getfixturevalue("pg_url")


HELPERS = os.path.join(os.path.dirname(__file__), "helpers")


@pytest.fixture
def browser() -> Iterator[object]:
    """Headless Debian Chromium through Selenium (see ``tests/_browser.py``), one per test: a page
    left open by one test (polling a server that is gone) cannot log errors into the next."""
    yield from _browser.chromium(missing)
