"""The SQL store: tasks in one table, reached through SQLAlchemy 2's async engine.

All I/O runs on the I/O loop the scheduler gives the store (``uses_io_loop``), on the
scheduler's I/O thread, so the scheduler's synchronous API works from any thread. The table
(see :mod:`asyncz_sqlalchemy.schema`) holds one row per task; due tasks are *claimed* in
one statement (``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING``) so
that several schedulers sharing a table never take the same due run.

A synchronous ``add_task`` on a running scheduler skips the I/O thread: it inserts the row
from the calling thread through a synchronous engine on the same database (see
:meth:`SQLAlchemyStore.add_task_sync` and :mod:`asyncz_sqlalchemy._sync`).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from asyncz.exceptions import ConflictingIdError, TaskLookupError, TaskRestoreError
from asyncz.stores.base import PersistentStore
from asyncz_sqlalchemy._sync import (
    Disconnected,
    DuplicateId,
    SyncInserter,
    create_sync_engine,
    sync_url,
)
from asyncz_sqlalchemy.schema import FORMAT_VERSION, REQUIRED_COLUMNS, build_table

if TYPE_CHECKING:
    from asyncz.abc import SchedulerHandle
    from asyncz.tasks import Task

__all__ = ["SQLAlchemyStore", "async_url"]

_WRITE = "asyncz_write"
_WRITTEN = ("id", "next_run_time", "payload", "format_version")
# Rows per statement when a list of ids goes into an IN (...) clause.
_CHUNK = 500


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
    import importlib.util

    if importlib.util.find_spec("asyncpg") is not None:
        return "asyncpg"
    if importlib.util.find_spec("psycopg") is not None:
        return "psycopg"
    raise ImportError(
        "A PostgreSQL URL needs an async driver: pip install 'asyncz-sqlalchemy[postgresql]' "
        "(asyncpg) or 'asyncz-sqlalchemy[psycopg]'"
    )


class SQLAlchemyStore(PersistentStore):
    """Keeps tasks in a SQL table (SQLite or PostgreSQL) through SQLAlchemy's async engine.

    ``database`` is a URL (``"sqlite:///jobs.db"``, ``"postgresql://user@host/db"``; plain
    URLs are mapped to ``aiosqlite`` / ``asyncpg``), an :class:`~sqlalchemy.ext.asyncio.AsyncEngine`
    (used as given and not disposed by the store) or a synchronous
    :class:`~sqlalchemy.engine.Engine`, whose URL is used. ``url`` is an alias of ``database``.

    Options:

    * ``tablename`` / ``schema``: where the rows live; the table is created when missing.
    * ``serializer``: ``"json"`` (default), ``"pickle"`` or a serializer instance.
    * ``poll_interval``: seconds between checks for tasks added by *other* processes sharing
      the table (``None``, the default, never polls: set it when sharing).
    * ``claim_timeout``: seconds a scheduler owns the due tasks it took; if it dies before
      writing them back, another scheduler takes them after this delay.
    * ``busy_timeout``: SQLite only, seconds to wait for another process's write lock.
    * ``wal``: SQLite only, switch the file to write-ahead logging (default ``True``) so
      that readers and one writer in several processes do not block each other.
    * anything else is passed to :func:`~sqlalchemy.ext.asyncio.create_async_engine`
      (``echo=True``, ``pool_size=5``, ``connect_args={...}``, ...).

    Construction never connects; :meth:`start` does, on the store's I/O loop.

    A synchronous ``add_task`` on a running scheduler inserts from the calling thread
    through a synchronous engine created on first use for the same database (``sqlite3``, or
    psycopg 3 for PostgreSQL: ``pip install 'asyncz-sqlalchemy[postgresql]'``); see
    :meth:`add_task_sync`.
    """

    uses_io_loop = True
    kind = "sqlalchemy"
    connection_errors = (OperationalError, InterfaceError)

    def __init__(
        self,
        database: str | URL | AsyncEngine | Engine | None = None,
        tablename: str = "asyncz_store",
        serializer: Any = None,
        *,
        url: str | URL | None = None,
        schema: str | None = None,
        poll_interval: float | None = None,
        claim_timeout: float = 60.0,
        busy_timeout: float = 30.0,
        wal: bool = True,
        pickle_protocol: int | None = None,
        **engine_options: Any,
    ) -> None:
        super().__init__(serializer=serializer)
        if database is None:
            database = url
        elif url is not None:
            raise TypeError("Give the database either as database= or as url=, not both")
        if database is None:
            raise TypeError("SQLAlchemyStore needs database= (a URL or an engine)")
        if poll_interval is not None and poll_interval <= 0:
            raise ValueError(f"poll_interval must be > 0 seconds or None, not {poll_interval!r}")
        if claim_timeout <= 0:
            raise ValueError(f"claim_timeout must be > 0 seconds, not {claim_timeout!r}")
        # Accepted for compatibility with Asyncz's constructor: the pickle serializer of
        # asyncz chooses its own protocol.
        del pickle_protocol
        self.tablename = tablename
        self.schema = schema
        self.poll_interval = poll_interval
        self.claim_timeout = float(claim_timeout)
        self.busy_timeout = float(busy_timeout)
        self.wal = wal
        self.table = build_table(tablename, sa.MetaData(schema=schema))
        #: Identifies this store's claims on due rows.
        self.claimant = uuid.uuid4().hex
        self._owns_engine = not isinstance(database, AsyncEngine)
        # Handed to the synchronous twin engine too (see add_task_sync).
        self._connect_args: dict[str, Any] = dict(engine_options.get("connect_args") or {})
        if isinstance(database, AsyncEngine):
            if engine_options:
                raise TypeError(
                    f"Engine options ({', '.join(engine_options)}) cannot apply to a given engine"
                )
            self.engine = database
        else:
            if isinstance(database, Engine):
                database = database.url
            self.engine = self._create_engine(async_url(database), engine_options)
        self._started = False
        # Write-backs that failed (the database went away): retried before the next claim so
        # that a run is not repeated when the database comes back.
        self._unsaved: dict[str, Task] = {}
        self._undeleted: set[str] = set()
        # The synchronous insert path: made on first use, closed by shutdown().
        self._inserter: SyncInserter | None = None
        self._sync_lock = threading.Lock()
        self._sync_unavailable = False

    # -- where the data lives --------------------------------------------------------------
    def address(self) -> str | None:
        return self.engine.url.render_as_string(hide_password=True)

    def address_options(self) -> tuple[str, ...]:
        return ("database",) if self._owns_engine else ()

    @property
    def dialect(self) -> str:
        """``"sqlite"``, ``"postgresql"``, ..."""
        return self.engine.dialect.name

    def _create_engine(self, url: URL, options: dict[str, Any]) -> AsyncEngine:
        options = dict(options)
        if url.get_backend_name() == "postgresql":
            # A server restart leaves dead connections in the pool: test them on checkout.
            options.setdefault("pool_pre_ping", True)
        engine = create_async_engine(url, **options)
        if engine.dialect.name == "sqlite":
            self._configure_sqlite(engine.sync_engine)
        return engine

    def _configure_sqlite(self, engine: Engine, pragmas: bool = True) -> None:
        """Set up the connections of a SQLite engine (the async engine's, and its
        synchronous twin's); ``pragmas=False`` leaves the database settings alone (an engine
        the user handed in gets none from the store)."""
        busy_ms = int(self.busy_timeout * 1000)
        wal = self.wal and (engine.url.database or ":memory:") != ":memory:"

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
            if connection.get_execution_options().get(_WRITE):
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                connection.exec_driver_sql("BEGIN")

    def _write(self) -> Any:
        """A transaction that will write (``async with self._write() as conn``)."""
        return self.engine.execution_options(**{_WRITE: True}).begin()

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, scheduler: SchedulerHandle, alias: str) -> None:
        await super().start(scheduler, alias)
        await self._prepare_table()
        self._started = True

    async def _prepare_table(self) -> None:
        table = self.table
        try:
            async with self._write() as conn:
                await conn.run_sync(table.create, checkfirst=True)
        except DBAPIError:
            # Another process created it at the same moment: fine if it exists now.
            if not await self._table_exists():
                raise
        async with self.engine.connect() as conn:
            columns = await conn.run_sync(_column_names, table)
        missing = sorted(REQUIRED_COLUMNS - columns)
        if missing:
            raise RuntimeError(
                f"Table {table.fullname!r} exists but lacks the column(s) "
                f"{', '.join(missing)} that asyncz-sqlalchemy {FORMAT_VERSION} needs. It was "
                "probably created by another scheduler (or an older version): see "
                "'Migrating the table' in the asyncz-sqlalchemy README."
            )
        # Tasks found unrestorable by an earlier process get another chance: the code that
        # was missing may have been deployed since. They are reported again if still broken.
        async with self._write() as conn:
            await conn.execute(
                sa.update(table).where(table.c.broken.is_not(None)).values(broken=None)
            )

    async def _table_exists(self) -> bool:
        table = self.table
        async with self.engine.connect() as conn:
            return bool(
                await conn.run_sync(
                    lambda sync: sa.inspect(sync).has_table(table.name, schema=table.schema)
                )
            )

    async def shutdown(self) -> None:
        self._started = False
        with self._sync_lock:
            inserter, self._inserter = self._inserter, None
        if inserter is not None:
            inserter.close()
        if self._owns_engine:
            await self.engine.dispose()

    # -- encoding --------------------------------------------------------------------------
    def _row(self, task: Task) -> dict[str, Any]:
        when = task.next_run_time
        return {
            "id": task.id,
            "next_run_time": when.timestamp() if isinstance(when, datetime) else None,
            "payload": self.encode_task(task),
            "format_version": FORMAT_VERSION,
            "broken": None,
            "claimed_by": None,
            "claimed_until": None,
        }

    async def _restore(self, rows: Iterable[Any]) -> list[Task]:
        """Decode rows; mark and report the ones that cannot be restored (kept, skipped)."""
        tasks: list[Task] = []
        broken: dict[str, str] = {}
        for row in rows:
            try:
                tasks.append(self._decode_row(row.id, row.payload, row.format_version))
            except TaskRestoreError as exc:
                broken[exc.task_id] = exc.reason
        if broken:
            await self._mark_broken(broken)
        return tasks

    def _decode_row(self, task_id: str, payload: bytes, version: int) -> Task:
        if version != FORMAT_VERSION:
            raise TaskRestoreError(
                task_id,
                f"row format version {version} is not supported (expected {FORMAT_VERSION})",
            )
        return self.decode_task(task_id, bytes(payload))

    async def _mark_broken(self, broken: dict[str, str]) -> None:
        table = self.table
        async with self._write() as conn:
            await conn.execute(
                sa.update(table)
                .where(table.c.id == sa.bindparam("b_id"))
                .values(broken=sa.bindparam("b_reason"), claimed_by=None, claimed_until=None),
                [{"b_id": task_id, "b_reason": reason} for task_id, reason in broken.items()],
            )
        for task_id, reason in broken.items():
            self.report_unrestorable(task_id, reason)

    # -- reading ---------------------------------------------------------------------------
    async def lookup_task(self, task_id: str) -> Task | None:
        table = self.table
        async with self.engine.connect() as conn:
            result = await conn.execute(
                sa.select(
                    table.c.id, table.c.payload, table.c.format_version, table.c.broken
                ).where(table.c.id == task_id)
            )
            row = result.first()
        if row is None or row.broken is not None:
            return None
        restored = await self._restore([row])
        return restored[0] if restored else None

    async def get_due_tasks(self, now: datetime, limit: int | None = None) -> list[Task]:
        await self._flush_unsaved()
        tasks: list[Task] = []
        while True:
            wanted = None if limit is None else limit - len(tasks)
            rows = await self._claim_due(now.timestamp(), wanted, [t.id for t in tasks])
            restored = await self._restore(rows)
            tasks.extend(restored)
            # Unrestorable rows are now marked and excluded: claim again in their place so
            # that they never starve good tasks behind them.
            if len(restored) == len(rows) or (wanted is not None and len(rows) < wanted):
                return tasks

    async def _claim_due(self, stamp: float, limit: int | None, taken: list[str]) -> list[Any]:
        """Claim due rows in one statement, earliest first; two stores never claim one row."""
        table = self.table
        free = sa.or_(
            table.c.claimed_by.is_(None),
            table.c.claimed_by == self.claimant,
            table.c.claimed_until < stamp,
        )
        due = (
            sa.select(table.c.id)
            .where(table.c.next_run_time <= stamp, table.c.broken.is_(None), free)
            .order_by(table.c.next_run_time, table.c.id)
            .with_for_update(skip_locked=True)
        )
        if limit is not None:
            due = due.limit(limit)
        if taken:  # claimed earlier in this call (own claims can be taken again)
            due = due.where(table.c.id.not_in(taken))
        claim = (
            sa.update(table)
            .where(table.c.id.in_(due.scalar_subquery()))
            .values(claimed_by=self.claimant, claimed_until=stamp + self.claim_timeout)
            .returning(table.c.id, table.c.payload, table.c.format_version, table.c.next_run_time)
        )
        async with self._write() as conn:
            rows = list((await conn.execute(claim)).all())
        rows.sort(key=lambda row: (row.next_run_time, row.id))
        return rows

    async def get_next_run_time(self) -> datetime | None:
        await self._flush_unsaved()
        table = self.table
        query = (
            sa.select(table.c.next_run_time)
            .where(
                table.c.next_run_time.is_not(None),
                table.c.broken.is_(None),
                sa.or_(
                    table.c.claimed_by.is_(None),
                    table.c.claimed_by == self.claimant,
                    table.c.claimed_until < datetime.now(timezone.utc).timestamp(),
                ),
            )
            .order_by(table.c.next_run_time)
            .limit(1)
        )
        async with self.engine.connect() as conn:
            stamp = (await conn.execute(query)).scalar()
        if stamp is None:
            return None
        return datetime.fromtimestamp(stamp, timezone.utc)

    async def get_all_tasks(self) -> list[Task]:
        table = self.table
        query = (
            sa.select(table.c.id, table.c.payload, table.c.format_version)
            .where(table.c.broken.is_(None))
            .order_by(table.c.next_run_time.asc().nulls_last(), table.c.id)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return await self._restore(rows)

    async def get_unrestorable(self) -> dict[str, str]:
        table = self.table
        query = (
            sa.select(table.c.id, table.c.broken)
            .where(table.c.broken.is_not(None))
            .order_by(table.c.id)
        )
        async with self.engine.connect() as conn:
            return {row.id: row.broken for row in (await conn.execute(query)).all()}

    # -- writing ---------------------------------------------------------------------------
    async def add_task(self, task: Task) -> None:
        row = self._row(task)
        try:
            async with self._write() as conn:
                await conn.execute(sa.insert(self.table), [row])
        except IntegrityError:
            raise ConflictingIdError(task.id, self.alias) from None

    def add_task_sync(self, task: Task) -> bool:
        """Insert the task's row from the calling thread (any thread), in a transaction of
        its own; :class:`ConflictingIdError` if the id exists.

        Runs on a synchronous engine made on first use for the same database: ``sqlite3``
        with the async engine's connection setup, or psycopg 3 for PostgreSQL. ``False``
        (the scheduler then awaits :meth:`add_task` on the I/O loop) before :meth:`start`,
        after :meth:`shutdown`, when there is no such engine (psycopg missing, an in-memory
        SQLite database, a given engine or ``connect_args`` of an unknown driver), and when
        the connection turns out to be lost (it is replaced on the next call).
        """
        if not self._started:
            return False
        inserter = self._inserter or self._make_sync()
        if inserter is None:
            return False
        when = task.next_run_time
        params = {
            "id": task.id,
            "next_run_time": when.timestamp() if isinstance(when, datetime) else None,
            "payload": self.encode_task(task),
            "format_version": FORMAT_VERSION,
        }
        try:
            inserter.insert(params)
        except DuplicateId:
            raise ConflictingIdError(task.id, self.alias) from None
        except Disconnected:
            return False
        return True

    def _make_sync(self) -> SyncInserter | None:
        with self._sync_lock:
            if self._inserter is not None or self._sync_unavailable or not self._started:
                return self._inserter
            url = sync_url(self.engine.url, self._connect_args)
            if url is None:
                self._sync_unavailable = True
                return None
            options: dict[str, Any] = {}
            if self._connect_args:
                options["connect_args"] = self._connect_args
            try:
                engine = create_sync_engine(url, **options)
            except ImportError:  # the sync driver cannot be loaded after all
                self._sync_unavailable = True
                return None
            if engine.dialect.name == "sqlite":
                self._configure_sqlite(engine, pragmas=self._owns_engine)
            self._inserter = SyncInserter(engine, self.table)
            return self._inserter

    async def add_tasks(self, tasks: Sequence[Task], replace_existing: bool = False) -> None:
        rows = [self._row(task) for task in tasks]
        if not rows:
            return
        table = self.table
        if replace_existing:
            async with self._write() as conn:
                await self._upsert(conn, rows)
            return
        ids = [row["id"] for row in rows]
        async with self._write() as conn:
            existing: set[str] = set()
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                found = await conn.execute(sa.select(table.c.id).where(table.c.id.in_(chunk)))
                existing.update(found.scalars())
            seen: set[str] = set()
            conflict: str | None = None
            keep: list[dict[str, Any]] = []
            for row in rows:
                if row["id"] in existing or row["id"] in seen:
                    conflict = row["id"]
                    break
                seen.add(row["id"])
                keep.append(row)
            if keep:
                try:
                    await conn.execute(sa.insert(table), keep)
                except IntegrityError:
                    # Inserted by someone else since the check above.
                    raise ConflictingIdError(keep[0]["id"], self.alias) from None
        if conflict is not None:
            raise ConflictingIdError(conflict, self.alias)

    async def _upsert(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        table = self.table
        # The last occurrence of an id wins, as when the tasks are added one by one.
        rows = list({row["id"]: row for row in rows}.values())
        if self.dialect in ("postgresql", "sqlite"):
            from sqlalchemy.dialects import postgresql, sqlite

            dialect = postgresql if self.dialect == "postgresql" else sqlite
            stmt = dialect.insert(table)
            stmt = stmt.on_conflict_do_update(
                index_elements=[table.c.id],
                set_={name: stmt.excluded[name] for name in rows[0] if name != "id"},
            )
            await conn.execute(stmt, rows)
            return
        ids = [row["id"] for row in rows]
        for start in range(0, len(ids), _CHUNK):
            await conn.execute(sa.delete(table).where(table.c.id.in_(ids[start : start + _CHUNK])))
        await conn.execute(sa.insert(table), rows)

    async def update_task(self, task: Task) -> None:
        row = self._row(task)
        table = self.table
        async with self._write() as conn:
            result = await conn.execute(
                sa.update(table).where(table.c.id == row.pop("id")).values(**row)
            )
        if result.rowcount == 0:
            raise TaskLookupError(task.id, self.alias)

    async def update_tasks(self, tasks: Iterable[Task]) -> None:
        batch = {task.id: task for task in tasks}
        if not batch:
            return
        try:
            await self._write_back(batch, only_claimed=False)
        except (DBAPIError, OSError):
            self._unsaved.update(batch)
            raise

    async def _write_back(self, batch: dict[str, Task], only_claimed: bool) -> None:
        table = self.table
        params = []
        for task in batch.values():
            row = self._row(task)
            params.append({f"b_{key}": row[key] for key in _WRITTEN})
        condition = table.c.id == sa.bindparam("b_id")
        if only_claimed:
            # A retried write-back must not undo a change made since (which drops the claim).
            condition = sa.and_(condition, table.c.claimed_by == self.claimant)
        stmt = (
            sa.update(table)
            .where(condition)
            .values(
                next_run_time=sa.bindparam("b_next_run_time"),
                payload=sa.bindparam("b_payload"),
                format_version=sa.bindparam("b_format_version"),
                broken=None,
                claimed_by=None,
                claimed_until=None,
            )
        )
        async with self._write() as conn:
            await conn.execute(stmt, params)

    async def delete_task(self, task_id: str) -> None:
        table = self.table
        async with self._write() as conn:
            result = await conn.execute(sa.delete(table).where(table.c.id == task_id))
        if result.rowcount == 0:
            raise TaskLookupError(task_id, self.alias)

    async def delete_tasks(self, task_ids: Iterable[str]) -> None:
        ids = list(dict.fromkeys(task_ids))
        if not ids:
            return
        try:
            await self._delete_many(ids)
        except (DBAPIError, OSError):
            self._undeleted.update(ids)
            raise

    async def _delete_many(self, ids: list[str]) -> None:
        table = self.table
        async with self._write() as conn:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                await conn.execute(sa.delete(table).where(table.c.id.in_(chunk)))

    async def remove_all_tasks(self) -> None:
        self._unsaved.clear()
        self._undeleted.clear()
        async with self._write() as conn:
            await conn.execute(sa.delete(self.table))

    async def _flush_unsaved(self) -> None:
        """Write back what a processing pass could not store before the database went away."""
        if self._unsaved:
            await self._write_back(dict(self._unsaved), only_claimed=True)
            self._unsaved.clear()
        if self._undeleted:
            await self._delete_many(sorted(self._undeleted))
            self._undeleted.clear()

    def __repr__(self) -> str:
        url = self.engine.url.render_as_string(hide_password=True)
        return f"<{type(self).__name__} alias={self.alias!r} url={url!r} table={self.tablename!r}>"


def _column_names(conn: Connection, table: sa.Table) -> set[str]:
    inspector = sa.inspect(conn)
    return {column["name"] for column in inspector.get_columns(table.name, schema=table.schema)}
