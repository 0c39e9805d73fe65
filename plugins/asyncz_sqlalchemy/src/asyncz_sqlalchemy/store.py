"""The SQL store: tasks in one table, reached through SQLAlchemy 2's async engine.

All I/O runs on the I/O loop the scheduler gives the store (``uses_io_loop``), on the
scheduler's I/O thread, so the scheduler's synchronous API works from any thread.

The store is *coordinated*: several schedulers (nodes) share the table. Each row carries a
``revision``, a claim (``lease_owner``, ``lease_until``) and ``due_at``, the one indexed time
a node looks at (the next run time, or the end of the lease while the task is claimed, so an
expired claim is simply due again). A pass claims due rows in one statement
(``UPDATE ... WHERE id IN (SELECT ... WHERE due_at <= :now ORDER BY due_at LIMIT :n FOR
UPDATE SKIP LOCKED) RETURNING ...``) and writes them back fenced by owner and revision (one
statement on PostgreSQL, see :mod:`asyncz_sqlalchemy._postgres`; one ``BEGIN IMMEDIATE``
transaction on SQLite). Writes on PostgreSQL send ``pg_notify`` in the same statement and
every store ``LISTEN``\\s, so the other nodes wake up; SQLite (one host) polls.

A synchronous ``add_task`` on a running scheduler skips the I/O thread: it inserts the row
from the calling thread through a synchronous engine on the same database (see
:meth:`SQLAlchemyStore.add_task_sync` and :mod:`asyncz_sqlalchemy._sync`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from asyncz.abc import TaskPage
from asyncz.exceptions import ConflictingIdError, StaleTaskError, TaskLookupError
from asyncz.nodes import NODE_RETENTION, NodeInfo
from asyncz.stores.base import is_finished
from asyncz_sqlalchemy import _postgres as pg
from asyncz_sqlalchemy._base import stamp
from asyncz_sqlalchemy._engine import async_url
from asyncz_sqlalchemy._history import SQLHistory
from asyncz_sqlalchemy.schema import FORMAT_VERSION

if TYPE_CHECKING:
    from asyncz.tasks import Task

__all__ = ["SQLAlchemyStore", "async_url"]

# Rows per statement when a list of ids goes into an IN (...) clause.
_CHUNK = 500


class SQLAlchemyStore(SQLHistory):
    """Keeps tasks in a SQL table (SQLite or PostgreSQL) through SQLAlchemy's async engine.

    ``database`` is a URL (``"sqlite:///jobs.db"``, ``"postgresql://user@host/db"``; plain
    URLs are mapped to ``aiosqlite`` / ``asyncpg``), an :class:`~sqlalchemy.ext.asyncio.AsyncEngine`
    (used as given and not disposed by the store) or a synchronous
    :class:`~sqlalchemy.engine.Engine`, whose URL is used. ``url`` is an alias of ``database``.

    Options:

    * ``tablename`` / ``schema``: where the rows live; the table is created when missing, and
      a table of an earlier version of the store is migrated in place (columns added).
    * ``nodes_tablename``: the table of node records (default ``<tablename>_nodes``).
    * ``runs_tablename``: the table of run history (default ``<tablename>_runs``; see
      :mod:`asyncz_sqlalchemy._history`).
    * ``serializer``: ``"json"`` (default), ``"pickle"`` or a serializer instance.
    * ``poll_interval``: seconds between checks for tasks changed by *other* processes.
      ``"auto"`` (default): on PostgreSQL (asyncpg) none, the store hears of other nodes'
      writes through ``LISTEN``/``NOTIFY``; on SQLite (one host, no notifications) 1 second.
      ``None`` never polls.
    * ``busy_timeout``: SQLite only, seconds to wait for another process's write lock.
    * ``wal``: SQLite only, switch the file to write-ahead logging (default ``True``) so
      that readers and one writer in several processes do not block each other.
    * anything else is passed to :func:`~sqlalchemy.ext.asyncio.create_async_engine`
      (``echo=True``, ``pool_size=5``, ``connect_args={...}``, ...).

    Claims last ``asyncz.coordination.lease`` seconds (a scheduler setting), extended by the
    node's heartbeats. Construction never connects; :meth:`start` does, on the store's I/O
    loop.

    A synchronous ``add_task`` on a running scheduler inserts from the calling thread
    through a synchronous engine created on first use for the same database (``sqlite3``, or
    psycopg 3 for PostgreSQL: ``pip install 'asyncz-sqlalchemy[postgresql]'``); see
    :meth:`add_task_sync`.
    """

    # -- reading ---------------------------------------------------------------------------
    async def lookup_task(self, task_id: str) -> Task | None:
        table = self.table
        query = sa.select(*self._columns(), table.c.broken).where(table.c.id == task_id)
        rows = await self._fetch(query)
        if not rows or rows[0].broken is not None:
            return None
        restored = await self._restore(rows)
        return restored[0] if restored else None

    async def get_due_tasks(self, now: datetime, limit: int | None = None) -> list[Task]:
        """A plain read (nothing is claimed: nodes claim with :meth:`acquire_due_tasks`)."""
        table = self.table
        tasks: list[Task] = []
        while True:
            wanted = None if limit is None else limit - len(tasks)
            query = (
                sa.select(*self._columns())
                .where(table.c.next_run_time <= now.timestamp(), table.c.broken.is_(None))
                .order_by(table.c.next_run_time, table.c.id)
            )
            if wanted is not None:
                query = query.limit(wanted)
            if tasks:
                query = query.where(table.c.id.not_in([task.id for task in tasks]))
            rows = await self._fetch(query)
            restored = await self._restore(rows)
            tasks.extend(restored)
            # Unrestorable rows are now marked and excluded: read again in their place so
            # that they never starve good tasks behind them.
            if len(restored) == len(rows) or (wanted is not None and len(rows) < wanted):
                return tasks

    async def get_next_run_time(self) -> datetime | None:
        table = self.table
        query = (
            sa.select(table.c.due_at)
            .where(table.c.due_at.is_not(None), table.c.broken.is_(None))
            .order_by(table.c.due_at)
            .limit(1)
        )
        rows = await self._fetch(query)
        return datetime.fromtimestamp(rows[0].due_at, timezone.utc) if rows else None

    async def get_all_tasks(self) -> list[Task]:
        table = self.table
        query = (
            sa.select(*self._columns())
            .where(table.c.broken.is_(None))
            .order_by(table.c.next_run_time.asc().nulls_last(), table.c.id)
        )
        return await self._restore(await self._fetch(query))

    async def get_task_page(self, cursor: str | None, limit: int) -> TaskPage:
        """``limit`` rows by id after ``cursor`` (the last id of the page before)."""
        table = self.table
        query = sa.select(*self._columns(), table.c.broken).order_by(table.c.id).limit(limit)
        if cursor is not None:
            query = query.where(table.c.id > cursor)
        rows = await self._fetch(query)
        unrestorable = {row.id: row.broken for row in rows if row.broken is not None}
        tasks = await self._restore([row for row in rows if row.broken is None], unrestorable)
        following = rows[-1].id if len(rows) >= limit else None
        return TaskPage(tasks, unrestorable, following)

    async def get_unrestorable(self) -> dict[str, str]:
        table = self.table
        query = (
            sa.select(table.c.id, table.c.broken)
            .where(table.c.broken.is_not(None))
            .order_by(table.c.id)
        )
        return {row.id: row.broken for row in await self._fetch(query)}

    # -- writing ---------------------------------------------------------------------------
    async def add_task(self, task: Task) -> None:
        row = {"id": task.id, "revision": 1, **self._row(task)}
        stmt = self._notifying(
            sa.insert(self.table).values(row).returning(self.table.c.id), row["due_at"]
        )

        async def insert(conn: AsyncConnection) -> None:
            await conn.execute(stmt)

        try:
            await self._run(insert, write=True)
        except IntegrityError:
            raise ConflictingIdError(task.id, self.alias) from None
        task.revision = 1

    async def add_tasks(self, tasks: Sequence[Task], replace_existing: bool = False) -> None:
        # The last occurrence of an id wins, as when the tasks are added one by one.
        unique = {task.id: task for task in tasks} if replace_existing else None
        rows = [{"id": t.id, "revision": 1, **self._row(t)} for t in (unique or {}).values()]
        if not replace_existing:
            rows = [{"id": t.id, "revision": 1, **self._row(t)} for t in tasks]
        if not rows:
            return
        times = [row["due_at"] for row in rows if row["due_at"] is not None]
        if replace_existing:
            revisions = await self._run(
                lambda conn: self._upsert(conn, rows, times), write=True, transaction=True
            )
            assert unique is not None
            for task_id, revision in revisions.items():
                unique[task_id].revision = revision
            return
        conflict = await self._run(
            lambda conn: self._insert_new(conn, rows, times), write=True, transaction=True
        )
        added = {row["id"] for row in rows}
        for task in tasks:
            if task.id == conflict:
                break
            if task.id in added:
                task.revision = 1
        if conflict is not None:
            raise ConflictingIdError(conflict, self.alias)

    async def _insert_new(
        self, conn: AsyncConnection, rows: list[dict[str, Any]], times: list[float]
    ) -> str | None:
        """Insert the rows before the first id that exists (or repeats); returns that id.

        One ``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` (no read of the ids first:
        a prepared ``id IN (...)`` check of 500 ids ran on a generic plan that scanned the
        table, 0.3-0.5 s per 500 ids at 30k rows on PostgreSQL, so that bulk adds slowed
        with the table's size); when an id was not inserted, the rows after the first such
        one are deleted again in the same transaction."""
        from sqlalchemy.dialects import postgresql, sqlite

        table = self.table
        dialect = postgresql if self._postgres else sqlite
        stmt = dialect.insert(table).on_conflict_do_nothing(index_elements=[table.c.id])
        result = await conn.execute(stmt.returning(table.c.id), rows)  # insertmanyvalues
        inserted = set(result.scalars())
        conflict: str | None = None
        seen: set[str] = set()
        rest: list[dict[str, Any]] = []
        for i, row in enumerate(rows):
            if row["id"] not in inserted or row["id"] in seen:
                conflict, rest = row["id"], rows[i + 1 :]
                break
            seen.add(row["id"])
        fresh = inserted - seen  # inserted here after the conflict: not to be kept
        after = list(dict.fromkeys(row["id"] for row in rest if row["id"] in fresh))
        for start in range(0, len(after), _CHUNK):
            chunk = after[start : start + _CHUNK]
            await conn.execute(sa.delete(table).where(table.c.id.in_(chunk)))
        if seen:
            kept = (row["due_at"] for row in rows if row["id"] in seen)
            await self._notify(conn, min((t for t in kept if t is not None), default=None))
        return conflict

    async def _upsert(
        self, conn: AsyncConnection, rows: list[dict[str, Any]], times: list[float]
    ) -> dict[str, int]:
        """Insert or replace; a replaced row's revision moves. Returns the revisions."""
        from sqlalchemy.dialects import postgresql, sqlite

        table = self.table
        dialect = postgresql if self._postgres else sqlite
        stmt = dialect.insert(table)
        values = {name: stmt.excluded[name] for name in rows[0] if name not in ("id", "revision")}
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.id], set_={**values, "revision": table.c.revision + 1}
        ).returning(table.c.id, table.c.revision, sort_by_parameter_order=True)
        result = await conn.execute(stmt, rows)
        await self._notify(conn, min(times, default=None))
        return {row.id: int(row.revision) for row in result.all()}

    async def _notify(self, conn: AsyncConnection, when: float | None) -> None:
        if self._postgres and when is not None:
            message = pg.message(self.sender, when)
            await conn.execute(
                sa.select(sa.cast(sa.func.pg_notify(self.channel, message), sa.Text))
            )

    async def update_task(self, task: Task) -> None:
        """Compare-and-set on the revision when ``task.revision`` is set (see
        :meth:`asyncz.abc.Store.update_task`); ends any claim on the task."""
        table = self.table
        row = self._row(task)
        condition = table.c.id == task.id
        if task.revision:
            condition = sa.and_(condition, table.c.revision == task.revision)
        dml = (
            sa.update(table)
            .where(condition)
            .values(**row, revision=table.c.revision + 1)
            .returning(table.c.revision)
        )
        stmt = self._notifying(dml, row["due_at"])

        async def write(conn: AsyncConnection) -> tuple[int | None, int | None]:
            written = (await conn.execute(stmt)).first()
            if written is not None:
                return int(written.revision), None
            found = (
                await conn.execute(sa.select(table.c.revision).where(table.c.id == task.id))
            ).scalar()
            return None, found

        revision, found = await self._run(write, write=True)
        if revision is not None:
            task.revision = revision
        elif found is None:
            raise TaskLookupError(task.id, self.alias)
        else:
            raise StaleTaskError(task.id, self.alias, task.revision, int(found))

    async def update_tasks(self, tasks: Iterable[Task]) -> None:
        """Write every task unconditionally (a task deleted meanwhile is skipped)."""
        batch = {task.id: task for task in tasks}
        if not batch:
            return
        times = [
            when
            for when in map(stamp, (t.next_run_time for t in batch.values()))
            if when is not None
        ]

        async def write(conn: AsyncConnection) -> None:
            await self._write_many(conn, batch.values())
            await self._notify(conn, min(times, default=None))

        await self._run(write, write=True, transaction=True)

    async def _write_many(self, conn: AsyncConnection, tasks: Iterable[Task]) -> None:
        """Write the tasks (one executemany ``UPDATE``): revision + 1, claim ended."""
        table = self.table
        params = [{f"b_{k}": v for k, v in self._row(t).items()} | {"b_id": t.id} for t in tasks]
        if not params:
            return
        values: dict[str, Any] = {name[2:]: sa.bindparam(name) for name in params[0]}
        del values["id"]
        stmt = (
            sa.update(table)
            .where(table.c.id == sa.bindparam("b_id"))
            .values(**values, revision=table.c.revision + 1)
        )
        await conn.execute(stmt, params)

    async def delete_task(self, task_id: str) -> None:
        table = self.table

        async def delete(conn: AsyncConnection) -> int:
            return (await conn.execute(sa.delete(table).where(table.c.id == task_id))).rowcount

        if await self._run(delete, write=True) == 0:
            raise TaskLookupError(task_id, self.alias)

    async def delete_tasks(self, task_ids: Iterable[str]) -> None:
        ids = list(dict.fromkeys(task_ids))
        if not ids:
            return
        table = self.table

        async def delete(conn: AsyncConnection) -> None:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                await conn.execute(sa.delete(table).where(table.c.id.in_(chunk)))

        await self._run(delete, write=True, transaction=True)

    async def remove_all_tasks(self) -> None:
        async def delete(conn: AsyncConnection) -> None:
            await conn.execute(sa.delete(self.table))

        await self._run(delete, write=True)

    # -- coordination ------------------------------------------------------------------------
    async def acquire_due_tasks(
        self, node: str, now: datetime, lease: float, limit: int
    ) -> list[Task]:
        table = self.table
        stamp = now.timestamp()
        until = stamp + lease
        tasks: list[Task] = []
        while len(tasks) < limit:
            wanted = limit - len(tasks)
            due = (
                sa.select(table.c.id)
                .where(table.c.due_at <= stamp, table.c.broken.is_(None))
                .order_by(table.c.due_at, table.c.id)
                .limit(wanted)
                .with_for_update(skip_locked=True)
            )
            claim = (
                sa.update(table)
                .where(table.c.id.in_(due.scalar_subquery()))
                .values(lease_owner=node, lease_until=until, due_at=until)
                .returning(*self._columns(), table.c.next_run_time)
            )

            async def execute(conn: AsyncConnection, claim: Any = claim) -> list[Any]:
                return list((await conn.execute(claim)).all())

            rows = await self._run(execute, write=True)
            rows.sort(key=lambda row: (row.next_run_time, row.id))
            restored = await self._restore(rows)
            tasks.extend(restored)
            # Unrestorable rows are now marked (and their claims dropped): claim again in
            # their place so that they never starve good tasks behind them.
            if len(restored) == len(rows) or len(rows) < wanted:
                break
        return tasks

    async def release_tasks(self, node: str, tasks: Sequence[Task]) -> list[Task]:
        if not tasks:
            return []
        if self._postgres:
            revisions = await self._release_postgres(node, tasks)
        else:
            revisions = await self._run(
                lambda conn: self._release_fenced(conn, node, tasks), write=True, transaction=True
            )
        written = []
        for task in tasks:
            if task.id in revisions:
                revision = revisions[task.id]
                if revision is not None:
                    task.revision = revision
                written.append(task)
        return written

    async def _release_postgres(self, node: str, tasks: Sequence[Task]) -> dict[str, int | None]:
        """One statement (one round trip) for the whole batch; see
        :func:`asyncz_sqlalchemy._postgres.release_sql`."""
        times = [stamp(task.next_run_time) for task in tasks]
        kept = [when for when in times if when is not None]
        keeps = [not is_finished(task) for task in tasks]
        params = {
            "ids": [task.id for task in tasks],
            "revisions": [task.revision for task in tasks],
            "payloads": [
                self.encode_task(task) if keep else b""
                for task, keep in zip(tasks, keeps, strict=True)
            ],
            "times": times,
            "keeps": keeps,
            "node": node,
            "format_version": FORMAT_VERSION,
            "channel": self.channel,
            "message": pg.message(self.sender, min(kept, default=None)),
        }
        stmt = pg.release_sql(self.table, self.engine.dialect.identifier_preparer)

        async def execute(conn: AsyncConnection) -> dict[str, int | None]:
            rows = (await conn.execute(stmt, params)).all()
            return {row.id: row.revision for row in rows if row.id is not None}

        return await self._run(execute)

    async def _release_fenced(
        self, conn: AsyncConnection, node: str, tasks: Sequence[Task]
    ) -> dict[str, int | None]:
        """In one write transaction: read the claims of the batch, then write (executemany)
        or delete the tasks that ``node`` still holds at their revision."""
        table = self.table
        ids = [task.id for task in tasks]
        held: dict[str, tuple[int, str | None]] = {}
        for start in range(0, len(ids), _CHUNK):
            query = sa.select(table.c.id, table.c.revision, table.c.lease_owner).where(
                table.c.id.in_(ids[start : start + _CHUNK])
            )
            held.update((r.id, (r.revision, r.lease_owner)) for r in await conn.execute(query))
        ours = [task for task in tasks if held.get(task.id) == (task.revision, node)]
        kept = [task for task in ours if not is_finished(task)]
        gone = [task.id for task in ours if is_finished(task)]
        if kept:
            await self._write_many(conn, kept)
        for start in range(0, len(gone), _CHUNK):
            await conn.execute(sa.delete(table).where(table.c.id.in_(gone[start : start + _CHUNK])))
        revisions: dict[str, int | None] = {task.id: task.revision + 1 for task in kept}
        revisions.update(dict.fromkeys(gone))
        return revisions

    async def heartbeat(self, node: NodeInfo, extend_claims: bool = True) -> None:
        beat = node.last_heartbeat.timestamp()
        until = beat + node.lease
        table = self.table

        async def write(conn: AsyncConnection) -> None:
            await self._put_node(conn, node)
            if extend_claims:
                await conn.execute(
                    sa.update(table)
                    .where(table.c.lease_owner == node.identity)
                    .values(lease_until=until, due_at=until)
                )
            nodes = self.nodes_table
            await conn.execute(sa.delete(nodes).where(nodes.c.ends_at < beat - NODE_RETENTION))

        await self._run(write, write=True, transaction=True)

    async def remove_node(self, node: NodeInfo) -> None:
        table = self.table

        async def write(conn: AsyncConnection) -> None:
            await self._put_node(conn, node)
            released = await conn.execute(
                sa.update(table)
                .where(table.c.lease_owner == node.identity)
                .values(lease_owner=None, lease_until=None, due_at=table.c.next_run_time)
            )
            if released.rowcount:
                await self._notify(conn, datetime.now(timezone.utc).timestamp())

        await self._run(write, write=True, transaction=True)

    async def _put_node(self, conn: AsyncConnection, node: NodeInfo) -> None:
        from sqlalchemy.dialects import postgresql, sqlite

        end = node.stopped_at or node.expires_at
        row = {
            "identity": node.identity,
            "ends_at": end.timestamp(),
            "info": json.dumps(node.to_dict()),
        }
        stmt = (postgresql if self._postgres else sqlite).insert(self.nodes_table).values(row)
        stmt = stmt.on_conflict_do_update(
            index_elements=["identity"], set_={"ends_at": row["ends_at"], "info": row["info"]}
        )
        await conn.execute(stmt)

    async def get_nodes(self) -> list[NodeInfo]:
        nodes = self.nodes_table
        rows = await self._fetch(sa.select(nodes.c.info).order_by(nodes.c.identity))
        return [NodeInfo.from_dict(json.loads(row.info)) for row in rows]

    def __repr__(self) -> str:
        url = self.engine.url.render_as_string(hide_password=True)
        return f"<{type(self).__name__} alias={self.alias!r} url={url!r} table={self.tablename!r}>"
