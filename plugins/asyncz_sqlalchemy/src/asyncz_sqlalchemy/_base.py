"""The SQL store's foundation: construction, engine and connections, start and shutdown
(schema set-up, LISTEN), encoding of rows and the synchronous insert path. The contract's
methods are in :mod:`asyncz_sqlalchemy.store`."""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from asyncz.exceptions import ConflictingIdError, TaskRestoreError
from asyncz.stores.base import PersistentStore
from asyncz_sqlalchemy import _postgres as pg
from asyncz_sqlalchemy._engine import WRITE, async_url, configure_sqlite
from asyncz_sqlalchemy._sync import (
    Disconnected,
    DuplicateId,
    SyncInserter,
    create_sync_engine,
    sync_url,
)
from asyncz_sqlalchemy.schema import (
    FORMAT_VERSION,
    build_nodes_table,
    build_runs_table,
    build_table,
    migrate,
)

if TYPE_CHECKING:
    from asyncz.abc import SchedulerHandle
    from asyncz.tasks import Task

__all__ = ["DEFAULT_POLL", "SQLStoreBase", "stamp"]

T = TypeVar("T")
#: poll_interval="auto" on SQLite, and on PostgreSQL when LISTEN is not available.
DEFAULT_POLL = 1.0


def stamp(when: Any) -> float | None:
    """A next run time as stored (POSIX seconds), ``None`` for none."""
    return when.timestamp() if isinstance(when, datetime) else None


class SQLStoreBase(PersistentStore):
    """What :class:`~asyncz_sqlalchemy.SQLAlchemyStore` is built on (see its options)."""

    uses_io_loop = True
    coordinated = True
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
        nodes_tablename: str | None = None,
        runs_tablename: str | None = None,
        poll_interval: float | str | None = "auto",
        busy_timeout: float = 30.0,
        wal: bool = True,
        pickle_protocol: int | None = None,
        **engine_options: Any,
    ) -> None:
        if "claim_timeout" in engine_options:
            raise TypeError(
                "SQLAlchemyStore no longer takes claim_timeout: claims last the scheduler's "
                "lease, the setting asyncz.coordination.lease (default 10 s), extended by "
                "heartbeats while the scheduler runs"
            )
        super().__init__(serializer=serializer)
        if database is None:
            database = url
        elif url is not None:
            raise TypeError("Give the database either as database= or as url=, not both")
        if database is None:
            raise TypeError("SQLAlchemyStore needs database= (a URL or an engine)")
        auto_poll = poll_interval == "auto"
        if not auto_poll and poll_interval is not None:
            poll_interval = float(poll_interval)
            if poll_interval <= 0:
                raise ValueError(
                    f"poll_interval must be > 0 seconds, 'auto' or None, not {poll_interval!r}"
                )
        # Accepted for compatibility with Asyncz's constructor: the pickle serializer of
        # asyncz chooses its own protocol.
        del pickle_protocol
        self.tablename = tablename
        self.schema = schema
        self.busy_timeout = float(busy_timeout)
        self.wal = wal
        metadata = sa.MetaData(schema=schema)
        self.table = build_table(tablename, metadata)
        self.nodes_table = build_nodes_table(nodes_tablename or f"{tablename}_nodes", metadata)
        self.runs_table = build_runs_table(runs_tablename or f"{tablename}_runs", metadata)
        # Tasks with records added since the last prune (their per-task retention is due),
        # and the max_per_task the whole table was last pruned to (None: not yet).
        self._runs_touched: set[str] = set()
        self._runs_swept: int | None = None
        #: Tells this store's notifications from other processes'.
        self.sender = uuid.uuid4().hex
        self._owns_engine = not isinstance(database, AsyncEngine)
        # Handed to the synchronous twin engine and the LISTEN connection too.
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
        self._sqlite = self.engine.dialect.name == "sqlite"
        self._postgres = self.engine.dialect.name == "postgresql"
        self.channel = pg.channel_name(self.table)
        self._connector = (
            pg.asyncpg_connector(self.engine, self._connect_args) if self._postgres else None
        )
        self._auto_poll = auto_poll
        if auto_poll:
            self.poll_interval = None if self._connector is not None else DEFAULT_POLL
        else:
            self.poll_interval = None if poll_interval is None else float(poll_interval)
        self._listener: pg.Listener | None = None
        self._started = False
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
            # One statement is one round trip: no BEGIN/COMMIT around it (the statements
            # that need a transaction ask for one, see _connection).
            options.setdefault("isolation_level", "AUTOCOMMIT")
        engine = create_async_engine(url, **options)
        if engine.dialect.name == "sqlite":
            configure_sqlite(engine.sync_engine, self.busy_timeout, self.wal)
        return engine

    # -- connections -------------------------------------------------------------------------
    @asynccontextmanager
    async def _connection(
        self, write: bool = False, transaction: bool = False
    ) -> AsyncIterator[AsyncConnection]:
        """A connection for one operation. SQLite: a ``BEGIN IMMEDIATE`` transaction when it
        writes. PostgreSQL: autocommit (each statement is atomic on its own: one round trip),
        or a ``READ COMMITTED`` transaction with ``transaction=True``."""
        if self._sqlite:
            if write:
                async with self.engine.execution_options(**{WRITE: True}).begin() as conn:
                    yield conn
            else:
                async with self.engine.connect() as conn:
                    yield conn
            return
        async with self.engine.connect() as conn:
            if transaction:
                await conn.execution_options(isolation_level="READ COMMITTED")
                async with conn.begin():
                    yield conn
                return
            if not self._owns_engine:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    async def _run(
        self,
        operation: Callable[[AsyncConnection], Awaitable[T]],
        write: bool = False,
        transaction: bool = False,
    ) -> T:
        """Run ``operation`` on a connection; once more on a fresh one when the pooled
        connection turned out to be dead (the server restarted since it was last used),
        instead of pinging every connection on checkout."""
        for attempt in (0, 1):
            try:
                async with self._connection(write, transaction) as conn:
                    return await operation(conn)
            except DBAPIError as exc:
                if attempt or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, scheduler: SchedulerHandle, alias: str) -> None:
        await super().start(scheduler, alias)
        await self._prepare_table()
        if self._connector is not None:
            self._listener = pg.Listener(
                self._connector, self.channel, self._heard, self._wake_now, self.logger
            )
            try:
                await self._listener.start()
            except Exception as exc:
                self._listener = None
                if self._auto_poll:
                    self.poll_interval = DEFAULT_POLL
                self.logger.warning(
                    "LISTEN %s failed (%s): changes by other schedulers are seen by polling "
                    "every %s s",
                    self.channel,
                    exc,
                    self.poll_interval,
                )
        self._started = True

    @property
    def listening(self) -> bool:
        """True while the store hears other processes' writes (PostgreSQL ``LISTEN``)."""
        return self._listener is not None and self._listener.listening

    def _heard(self, payload: str) -> None:
        sender, when = pg.parse_message(payload)
        if sender != self.sender and self.scheduler is not None:
            self.scheduler.wake(when)

    def _wake_now(self) -> None:
        if self.scheduler is not None:
            self.scheduler.wake(None)

    async def _prepare_table(self) -> None:
        """Create the tables, or migrate a table of an earlier version in place. On
        PostgreSQL under an advisory lock: processes starting at once on a fresh database
        would otherwise race on ``CREATE TABLE`` (duplicate type errors)."""
        table = self.table

        async def prepare(conn: AsyncConnection) -> None:
            if self._postgres:
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(pg.ddl_lock_key(table))))
            await conn.run_sync(table.metadata.create_all, checkfirst=True)
            await conn.run_sync(migrate, table)

        await self._run(prepare, write=True, transaction=True)

        # Tasks found unrestorable by an earlier process get another chance: the code that
        # was missing may have been deployed since. They are reported again if still broken.
        async def reset(conn: AsyncConnection) -> None:
            await conn.execute(
                sa.update(table).where(table.c.broken.is_not(None)).values(broken=None)
            )

        await self._run(reset, write=True)

    async def shutdown(self) -> None:
        self._started = False
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.stop()
        with self._sync_lock:
            inserter, self._inserter = self._inserter, None
        if inserter is not None:
            inserter.close()
        if self._owns_engine:
            await self.engine.dispose()

    # -- encoding --------------------------------------------------------------------------
    def _row(self, task: Task) -> dict[str, Any]:
        """The columns a write of ``task`` sets (all but ``id`` and ``revision``)."""
        when = stamp(task.next_run_time)
        return {
            "next_run_time": when,
            "payload": self.encode_task(task),
            "format_version": FORMAT_VERSION,
            "broken": None,
            "lease_owner": None,
            "lease_until": None,
            "due_at": when,
        }

    def _notifying(self, dml: Any, when: float | None) -> Any:
        """On PostgreSQL, ``dml`` (with RETURNING) that also notifies the other nodes of a
        next run time (none to tell for a paused task)."""
        if not self._postgres or when is None:
            return dml
        return pg.notifying(dml, self.channel, pg.message(self.sender, when))

    async def _restore(
        self, rows: Iterable[Any], broken: dict[str, str] | None = None
    ) -> list[Task]:
        """Decode rows (with their revision); mark and report the ones that cannot be
        restored (kept, skipped; added to ``broken`` with the reason when given)."""
        tasks: list[Task] = []
        if broken is None:
            broken = {}
        for row in rows:
            try:
                task = self._decode_row(row.id, row.payload, row.format_version)
            except TaskRestoreError as exc:
                broken[exc.task_id] = exc.reason
            else:
                task.revision = int(row.revision)
                tasks.append(task)
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
        stmt = (
            sa.update(table)
            .where(table.c.id == sa.bindparam("b_id"))
            .values(
                broken=sa.bindparam("b_reason"),
                lease_owner=None,
                lease_until=None,
                due_at=table.c.next_run_time,
            )
        )
        params = [{"b_id": task_id, "b_reason": reason} for task_id, reason in broken.items()]

        async def mark(conn: AsyncConnection) -> None:
            await conn.execute(stmt, params)

        await self._run(mark, write=True)
        for task_id, reason in broken.items():
            self.report_unrestorable(task_id, reason)

    def _columns(self) -> tuple[sa.Column[Any], ...]:
        c = self.table.c
        return (c.id, c.payload, c.format_version, c.revision)

    async def _fetch(self, query: Any) -> list[Any]:
        async def fetch(conn: AsyncConnection) -> list[Any]:
            return list((await conn.execute(query)).all())

        return await self._run(fetch)

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
        when = stamp(task.next_run_time)
        params = {
            "id": task.id,
            "next_run_time": when,
            "payload": self.encode_task(task),
            "format_version": FORMAT_VERSION,
            "revision": 1,
            "due_at": when,
        }
        if inserter.notifies:
            params["notify_channel"] = self.channel
            params["notify_message"] = pg.message(self.sender, when)
        try:
            inserter.insert(params)
        except DuplicateId:
            raise ConflictingIdError(task.id, self.alias) from None
        except Disconnected:
            return False
        task.revision = 1
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
                configure_sqlite(engine, self.busy_timeout, self.wal, pragmas=self._owns_engine)
            self._inserter = SyncInserter(engine, self.table, notify=self._postgres)
            return self._inserter
