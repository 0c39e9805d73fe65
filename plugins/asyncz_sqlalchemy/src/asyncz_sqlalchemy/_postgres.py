"""What the SQL store does only on PostgreSQL: the one-statement write-back, notifications
(``pg_notify`` in the writing statement, ``LISTEN`` on a dedicated asyncpg connection) and
the advisory lock that serializes the schema set-up of processes starting together.

Data path: a node's write-back (:func:`release_sql`) and every task write of a management call
send ``pg_notify(channel, '{"sender": ..., "at": <earliest next run time>}')`` inside the
writing statement, so the message is delivered when (and only if) the write commits. Every
store of the same table listens on the channel (:class:`Listener`) and calls
``scheduler.wake(at)`` for messages of other store instances.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "Listener",
    "channel_name",
    "ddl_lock_key",
    "message",
    "notifying",
    "parse_message",
    "release_sql",
]

_PING_EVERY = 30.0
_MAX_DELAY = 10.0


def channel_name(table: sa.Table) -> str:
    """The ``NOTIFY`` channel of a task table (at most 63 bytes, PostgreSQL's limit)."""
    name = f"asyncz:{table.fullname}"
    if len(name.encode()) > 63:
        name = "asyncz:" + hashlib.sha256(table.fullname.encode()).hexdigest()[:40]
    return name


def ddl_lock_key(table: sa.Table) -> int:
    """The key of the advisory lock taken around the schema set-up of ``table``."""
    digest = hashlib.sha256(f"asyncz-ddl:{table.fullname}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def message(sender: str, at: float | None) -> str:
    return json.dumps({"sender": sender, "at": at}, separators=(",", ":"))


def parse_message(payload: str) -> tuple[str, datetime | None]:
    """``(sender, earliest next run time)`` of a notification (``None``: unknown)."""
    data = json.loads(payload)
    at = data.get("at")
    when = datetime.fromtimestamp(float(at), timezone.utc) if at is not None else None
    return str(data.get("sender", "")), when


def notifying(dml: Any, channel: str, payload: str) -> sa.Select[Any]:
    """``dml`` (an INSERT/UPDATE ``... RETURNING``) as one statement that also sends
    ``payload`` on ``channel`` if it wrote a row: ``WITH w AS (<dml>) SELECT w.*, ...``.
    PostgreSQL delivers identical notifications of one transaction once."""
    written = dml.cte("written")
    notify = sa.cast(sa.func.pg_notify(channel, payload), sa.Text).label("notified")
    return sa.select(*written.c, notify)


def release_sql(table: sa.Table, preparer: Any) -> sa.TextClause:
    """One statement for a whole write-back: every task of the batch is written (or deleted
    when it is finished: ``keep`` false) only where ``:node`` holds it at the revision it was
    claimed at; returns ``(id, revision)`` of the written ones (revision NULL for a deleted
    one) and, when a task was kept, sends the notification once."""
    t = preparer.format_table(table)
    return sa.text(
        f"""
        WITH batch AS (
            SELECT * FROM unnest(
                CAST(:ids AS text[]), CAST(:revisions AS bigint[]),
                CAST(:payloads AS bytea[]), CAST(:times AS float8[]),
                CAST(:keeps AS boolean[])
            ) AS b(id, rev, payload, nrt, keep)
        ),
        kept AS (
            UPDATE {t} AS t
            SET payload = b.payload, next_run_time = b.nrt, due_at = b.nrt,
                format_version = :format_version, revision = t.revision + 1,
                lease_owner = NULL, lease_until = NULL, broken = NULL
            FROM batch AS b
            WHERE t.id = b.id AND t.revision = b.rev AND t.lease_owner = :node
              AND b.keep
            RETURNING t.id, t.revision
        ),
        gone AS (
            DELETE FROM {t} AS t USING batch AS b
            WHERE t.id = b.id AND t.revision = b.rev AND t.lease_owner = :node
              AND NOT b.keep
            RETURNING t.id
        )
        SELECT id, revision FROM kept
        UNION ALL SELECT id, CAST(NULL AS bigint) FROM gone
        UNION ALL SELECT NULL, CAST(NULL AS bigint)
            FROM (SELECT pg_notify(:channel, :message) FROM kept LIMIT 1) AS notified
        """
    )


def asyncpg_connector(
    engine: AsyncEngine, connect_args: dict[str, Any]
) -> Callable[[], Awaitable[Any]] | None:
    """A function opening a plain asyncpg connection to the engine's database, or ``None``
    when the engine does not use asyncpg (the store then polls)."""
    if engine.dialect.driver != "asyncpg":
        return None
    import asyncpg  # type: ignore[import-untyped]

    args, kwargs = engine.dialect.create_connect_args(engine.url)
    kwargs.update(connect_args)
    for key in ("prepared_statement_cache_size", "prepared_statement_name_func"):
        kwargs.pop(key, None)
    creator = kwargs.pop("async_creator_fn", asyncpg.connect)

    async def connect() -> Any:
        return await creator(*args, **kwargs)

    return connect


class Listener:
    """``LISTEN channel`` on a dedicated connection, reopened after an outage.

    Runs on the store's I/O loop; ``on_message(payload)`` is called for each notification,
    ``on_reconnect()`` after the connection came back (notifications sent meanwhile are
    lost: the scheduler should look at the store).
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[Any]],
        channel: str,
        on_message: Callable[[str], None],
        on_reconnect: Callable[[], None],
        logger: logging.Logger,
    ) -> None:
        self._connect = connect
        self.channel = channel
        self._on_message = on_message
        self._on_reconnect = on_reconnect
        self._logger = logger
        self._task: asyncio.Task[None] | None = None
        #: True while the LISTEN connection is open.
        self.listening = False

    async def start(self) -> None:
        """Open the connection (raises when it cannot) and keep it open in the background."""
        conn = await self._open()
        self._task = asyncio.get_running_loop().create_task(self._keep(conn))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _open(self) -> Any:
        conn = await self._connect()
        try:
            await conn.add_listener(self.channel, self._deliver)
        except BaseException:
            conn.terminate()
            raise
        self.listening = True
        return conn

    def _deliver(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        try:
            self._on_message(payload)
        except Exception:  # a malformed message must not stop the listener
            self._logger.debug("Ignored notification %r on %s", payload, channel, exc_info=True)

    async def _keep(self, conn: Any) -> None:
        delay = 0.5
        while True:
            if conn is not None:
                try:
                    await self._watch(conn)
                except asyncio.CancelledError:
                    conn.terminate()
                    raise
                except Exception as exc:
                    self._logger.warning("LISTEN connection lost (%s); reconnecting", exc)
                self.listening = False
                conn.terminate()
                conn = None
            await asyncio.sleep(delay)
            try:
                conn = await self._open()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = min(_MAX_DELAY, delay * 2)
                self._logger.debug("LISTEN reconnection failed: %s", exc)
                continue
            delay = 0.5
            self._logger.info("LISTEN connection restored on %s", self.channel)
            self._on_reconnect()

    async def _watch(self, conn: Any) -> None:
        """Return when the connection closed (the server went away); ping it now and then,
        since a connection cut off without a FIN looks idle forever."""
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        while not lost.is_set() and not conn.is_closed():
            try:
                await asyncio.wait_for(lost.wait(), _PING_EVERY)
            except asyncio.TimeoutError:
                await asyncio.wait_for(conn.execute("SELECT 1"), _PING_EVERY)
