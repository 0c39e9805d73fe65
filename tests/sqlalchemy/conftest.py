"""Real databases for the SQL store: SQLite files, and a throw-away PostgreSQL cluster.

The cluster is started once per session on a free port (see
:class:`asyncz_sqlalchemy.testing.TemporaryPostgres` for the exact ``initdb`` / ``pg_ctl``
commands). Without PostgreSQL binaries the ``postgres`` tests skip with a message, or fail
when ``CI=true``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from asyncz_sqlalchemy.testing import PostgresUnavailable, TemporaryPostgres


@contextlib.contextmanager
def running_postgres(
    kind: type[TemporaryPostgres] = TemporaryPostgres,
) -> Iterator[TemporaryPostgres]:
    """A started throw-away cluster (``kind``: TemporaryPostgres or a subclass), closed at the
    end; the test skips when none can be had, or fails under ``CI=true`` (tests/chaos uses
    it too)."""
    try:
        server = kind()
        server.start()
    except PostgresUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL is required under CI=true: {exc}")
        pytest.skip(f"no PostgreSQL cluster could be started: {exc}")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[TemporaryPostgres]:
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: TemporaryPostgres) -> str:
    if not postgres_server.running:  # a test that stopped it failed half-way
        postgres_server.start()
    return postgres_server.url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tasks.db'}"
