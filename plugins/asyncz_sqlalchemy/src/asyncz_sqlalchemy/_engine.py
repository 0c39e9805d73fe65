"""URLs and engines of the SQL store: which async driver a plain URL gets, how a SQLite
engine's connections are set up (busy timeout, WAL, ``BEGIN IMMEDIATE`` for writes)."""

from __future__ import annotations

import importlib.util
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import ConnectionPoolEntry

__all__ = ["WRITE", "async_url", "configure_sqlite"]

#: Execution option of a connection whose transaction will write (SQLite: BEGIN IMMEDIATE).
WRITE = "asyncz_write"


def async_url(url: str | URL) -> URL:
    """Map a plain database URL to the async driver the store uses.

    ``sqlite:///jobs.db`` becomes ``sqlite+aiosqlite:///jobs.db``; ``postgresql://...`` (and
    ``postgres://``, ``postgresql+psycopg2://``) becomes ``postgresql+asyncpg://...``, or
    ``postgresql+psycopg://...`` when only psycopg 3 is installed. URLs that already name an
    async driver are returned unchanged.
    """
    parsed = make_url(url) if isinstance(url, str) else url
    # Parsed from the name: asking the URL for its dialect would load it.
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres") and driver in (
        "",
        "psycopg2",
        "psycopg2cffi",
        "pg8000",
    ):
        return parsed.set(drivername=f"postgresql+{_postgres_driver()}")
    return parsed


def _postgres_driver() -> str:
    if importlib.util.find_spec("asyncpg") is not None:
        return "asyncpg"
    if importlib.util.find_spec("psycopg") is not None:
        return "psycopg"
    raise ImportError(
        "A PostgreSQL URL needs an async driver: pip install 'asyncz-sqlalchemy[postgresql]' "
        "(asyncpg) or 'asyncz-sqlalchemy[psycopg]'"
    )


def configure_sqlite(engine: Engine, busy_timeout: float, wal: bool, pragmas: bool = True) -> None:
    """Set up the connections of a SQLite engine (the async engine's, and its synchronous
    twin's); ``pragmas=False`` leaves the database settings alone (an engine the user handed
    in gets none from the store)."""
    busy_ms = int(busy_timeout * 1000)
    wal = wal and (engine.url.database or ":memory:") != ":memory:"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy (not the driver) emit BEGIN, so writes can BEGIN IMMEDIATE;
        # a statement outside a transaction commits on its own.
        dbapi_connection.isolation_level = None
        if not pragmas:
            return
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            if wal:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A write transaction takes the write lock up front (waiting up to busy_timeout)
        # instead of failing when a read lock cannot be upgraded.
        if connection.get_execution_options().get(WRITE):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")
