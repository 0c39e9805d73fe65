"""The SQL store's synchronous insert path (see :meth:`SQLAlchemyStore.add_task_sync`).

A synchronous ``add_task`` on a running scheduler would otherwise hop to the store's I/O
thread and await the async driver there: two thread switches and an event-loop turn on top
of the database round trip. :class:`SyncInserter` writes the row from the calling thread
instead, through a synchronous :class:`~sqlalchemy.engine.Engine` on the same database
(stdlib ``sqlite3`` for SQLite, psycopg 3 for PostgreSQL).

What makes it cheap:

* the INSERT is compiled once, for the sync dialect, and executed on the DBAPI cursor of a
  connection the inserter keeps checked out (no pool checkout, no SQLAlchemy execution
  context, one reused cursor; psycopg prepares the statement server-side after a few runs);
* the connection is in autocommit mode, so the single INSERT is its own committed
  transaction: one statement (one round trip on PostgreSQL) instead of BEGIN / INSERT /
  COMMIT. On SQLite a lone INSERT takes the write lock as it starts (as ``BEGIN IMMEDIATE``
  does) and waits up to the busy timeout for it.

Another thread that finds the kept connection busy uses a pooled one, so concurrent adds do
not queue behind each other in Python.
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, create_engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection

__all__ = ["Disconnected", "DuplicateId", "SyncInserter", "create_sync_engine", "sync_url"]

#: The columns the synchronous path writes; the others of the row are NULL.
COLUMNS = ("id", "next_run_time", "payload", "format_version", "revision", "due_at")

# asyncpg-only URL options (statement cache tuning): irrelevant to psycopg, dropped.
_ASYNCPG_ONLY = frozenset({"prepared_statement_cache_size", "prepared_statement_name_func"})
# URL options both drivers read the same way (psycopg passes them on to libpq).
_PORTABLE = frozenset({"host", "port", "application_name", "connect_timeout", "sslmode"})


class DuplicateId(Exception):
    """A row with this id exists."""


class Disconnected(Exception):
    """The database connection was lost before the row could be written (the caller may
    retry on another path)."""


def sync_url(url: URL, connect_args: dict[str, Any] | None) -> URL | None:
    """The URL of a synchronous engine on the database that the async ``url`` reaches, or
    ``None`` when there is no such engine (unknown driver, private in-memory database,
    psycopg missing, connection arguments that only the async driver understands)."""
    backend, _, driver = url.drivername.partition("+")
    if backend == "sqlite":
        if driver not in ("", "aiosqlite", "pysqlite"):
            return None
        database = url.database or ""
        if (
            database in ("", ":memory:")
            or database.startswith("file::memory:")
            or url.query.get("mode") == "memory"
        ):
            return None  # another connection would see another, empty, database
        # aiosqlite hands its arguments (URL query, connect_args) to sqlite3.connect as is.
        return url.set(drivername="sqlite+pysqlite")
    if backend not in ("postgresql", "postgres"):
        return None
    if driver not in ("asyncpg", "psycopg", "psycopg_async"):
        return None
    if importlib.util.find_spec("psycopg") is None:
        return None
    if driver == "asyncpg":
        if connect_args:
            return None  # asyncpg's connect() arguments are not psycopg's
        query: dict[str, Any] = {}
        for key, value in url.query.items():
            if key in _ASYNCPG_ONLY:
                continue
            if key == "ssl" and isinstance(value, str):
                key = "sslmode"  # asyncpg's ssl=<mode> is libpq's sslmode=<mode>
            if key not in _PORTABLE:
                return None
            query[key] = value
        url = url.set(query=query)
    return url.set(drivername="postgresql+psycopg")


class SyncInserter:
    """Inserts rows into ``table`` from any thread, one committed transaction each.

    With ``notify`` (PostgreSQL) the INSERT also sends ``pg_notify(notify_channel,
    notify_message)`` (two more parameters) in the same statement: ``WITH w AS (INSERT ...
    RETURNING id) SELECT pg_notify(...) FROM w``.
    """

    def __init__(self, engine: Engine, table: sa.Table, notify: bool = False) -> None:
        self.engine = engine
        self.notifies = notify
        dialect = engine.dialect
        self._dbapi = dialect.loaded_dbapi
        columns = table.c
        values = {name: sa.bindparam(name, type_=columns[name].type) for name in COLUMNS}
        stmt: Any = sa.insert(table).values(values)
        if notify:
            written = stmt.returning(columns.id).cte("written")
            channel = sa.bindparam("notify_channel", type_=sa.Text)
            message = sa.bindparam("notify_message", type_=sa.Text)
            notified = sa.cast(sa.func.pg_notify(channel, message), sa.Text)
            stmt = sa.select(notified).select_from(written)
        compiled = stmt.compile(dialect=dialect)
        if compiled.positional:  # create_sync_engine() picks a named paramstyle
            raise RuntimeError(f"{dialect.name}: a positional paramstyle is not supported")
        self.sql: str = compiled.string
        self._lock = threading.Lock()
        self._conn: PoolProxiedConnection | None = None
        self._cursor: Any = None
        self._closed = False

    def insert(self, params: dict[str, Any]) -> None:
        """Write one row: ``params`` maps each of :data:`COLUMNS` to its value (bytes for
        the payload, a float or None for the next run time); the driver takes it as is.

        Raises :class:`DuplicateId` when the id exists,
        :class:`Disconnected` when the connection was lost (it is discarded), and
        :class:`~sqlalchemy.exc.DBAPIError` for anything else the database refuses.
        """
        if self._lock.acquire(blocking=False):
            try:
                if self._closed:
                    raise Disconnected("the store was shut down")
                if self._cursor is None:
                    self._keep_a_connection()
                try:
                    self._execute(self._conn, self._cursor, params)
                except Disconnected:
                    self._drop()
                    raise
            finally:
                self._lock.release()
        else:  # the kept connection is in use by another thread: take one from the pool
            if self._closed:
                raise Disconnected("the store was shut down")
            conn = self.engine.raw_connection()
            try:
                cursor = conn.cursor()
                try:
                    self._execute(conn, cursor, params)
                finally:
                    cursor.close()
            except Disconnected:
                conn.invalidate()
                raise
            finally:
                conn.close()

    def _keep_a_connection(self) -> None:
        conn = self.engine.raw_connection()
        try:
            cursor = conn.cursor()
        except BaseException:
            conn.close()
            raise
        self._conn, self._cursor = conn, cursor

    def _execute(self, conn: Any, cursor: Any, params: Any) -> None:
        dbapi = self._dbapi
        try:
            cursor.execute(self.sql, params)
        except dbapi.IntegrityError:
            raise DuplicateId from None
        except dbapi.Error as exc:
            if self.engine.dialect.is_disconnect(exc, conn.dbapi_connection, cursor):
                raise Disconnected(str(exc)) from exc
            raise DBAPIError.instance(
                self.sql, params, exc, dbapi.Error, dialect=self.engine.dialect
            ) from exc

    def _drop(self) -> None:
        """Discard the kept connection (lost): the pool replaces it."""
        conn, self._conn, self._cursor = self._conn, None, None
        if conn is not None:
            try:
                conn.invalidate()
            finally:
                conn.close()

    def close(self) -> None:
        """Return the kept connection and close every connection of the engine."""
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
            cursor, self._cursor = self._cursor, None
            try:
                if cursor is not None:
                    cursor.close()
                if conn is not None:
                    conn.close()
            finally:
                self.engine.dispose()


def create_sync_engine(url: URL, **options: Any) -> Engine:
    """A synchronous engine whose connections autocommit (see the module docstring)."""
    if url.get_backend_name() == "postgresql":
        options.setdefault("isolation_level", "AUTOCOMMIT")
    else:  # sqlite3 takes a dict with :name placeholders (the default is positional ?)
        options.setdefault("paramstyle", "named")
    # Every statement commits on its own: there is never a transaction to roll back when a
    # connection goes back to the pool.
    return create_engine(url, pool_reset_on_return=None, **options)
