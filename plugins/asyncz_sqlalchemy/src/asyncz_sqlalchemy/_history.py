"""Run history of the SQL store, in the table ``<tablename>_runs`` (see
:mod:`asyncz_sqlalchemy.schema`).

Data path: the scheduler's history recorder -> :meth:`SQLHistory.add_runs` (a batch: one
executemany ``INSERT``) -> rows, read newest first by :meth:`~SQLHistory.get_runs` through the
index ``(task_id, at DESC, seq DESC)`` (one task) or ``(at, seq)`` (every task).
:meth:`~SQLHistory.get_last_runs` takes the newest record of each task in one statement: an
index seek per task (``LATERAL`` on PostgreSQL, a correlated ``LIMIT 1`` subquery on
SQLite). :meth:`~SQLHistory.prune_runs` deletes by age through ``(at, seq)`` and, per task,
the rows ranked (``row_number()`` over the task's index range) past ``max_per_task``: of
every task with too many records on the first prune of a store instance (or when
``max_per_task`` changed; one grouped pass over the index finds them), afterwards only of the
tasks this instance wrote records of since (every node prunes what it wrote). Deletes are
bounded: at most :data:`PRUNE_BATCH` rows per statement, for at most 1,000 tasks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from asyncz.tasks.runs import RunRecord
from asyncz_sqlalchemy._base import SQLStoreBase
from asyncz_sqlalchemy.schema import RUN_TIME_FIELDS

__all__ = ["PRUNE_BATCH", "SQLHistory"]

#: Rows one pruning statement deletes at most (it repeats while there are more).
PRUNE_BATCH = 5000
#: Tasks whose records one per-task pruning statement ranks.
_PRUNE_TASKS = 1000

_UTC = timezone.utc
_fromtimestamp = datetime.fromtimestamp
_FIELDS = RunRecord._fields
_TIMES = frozenset(_FIELDS.index(name) for name in RUN_TIME_FIELDS)


def _row(record: RunRecord) -> dict[str, Any]:
    row = record._asdict()
    for name in RUN_TIME_FIELDS:
        when = row[name]
        if when is not None:
            row[name] = when.timestamp()
    row["at"] = record.time.timestamp()
    return row


def _record(row: Sequence[Any]) -> RunRecord:
    return RunRecord._make(
        _fromtimestamp(value, _UTC) if i in _TIMES and value is not None else value
        for i, value in enumerate(row)
    )


class SQLHistory(SQLStoreBase):
    """The four history methods of the store contract, on the runs table."""

    keeps_history = True

    def _record_columns(self, table: Any = None) -> list[Any]:
        c = (self.runs_table if table is None else table).c
        return [c[name] for name in _FIELDS]

    def _among(self, column: Any, ids: Sequence[str]) -> Any:
        """``column`` is one of ``ids``, with one bound parameter however many there are: an
        array on PostgreSQL, ``json_each`` on SQLite."""
        if self._postgres:
            return column == sa.any_(sa.bindparam(None, list(ids), postgresql.ARRAY(sa.Unicode)))
        values = sa.func.json_each(json.dumps(list(ids))).table_valued("value")
        return column.in_(sa.select(values.c.value))

    async def add_runs(self, records: Sequence[RunRecord]) -> None:
        """One executemany ``INSERT`` for the batch."""
        if not records:
            return
        rows = [_row(record) for record in records]
        stmt = sa.insert(self.runs_table)

        async def insert(conn: AsyncConnection) -> None:
            await conn.execute(stmt, rows)

        await self._run(insert, write=True)
        self._runs_touched.update(row["task_id"] for row in rows)

    async def get_runs(
        self,
        task_id: str | None = None,
        *,
        limit: int | None = 50,
        since: datetime | None = None,
        outcome: str | Sequence[str] | None = None,
    ) -> list[RunRecord]:
        t = self.runs_table
        query = sa.select(*self._record_columns()).order_by(t.c.at.desc(), t.c.seq.desc())
        if task_id is not None:
            query = query.where(t.c.task_id == task_id)
        if since is not None:
            query = query.where(t.c.at >= since.timestamp())
        if outcome is not None:
            outcomes = [outcome] if isinstance(outcome, str) else list(outcome)
            query = query.where(t.c.outcome.in_(outcomes))
        if limit is not None:
            query = query.limit(limit)
        return [_record(row) for row in await self._fetch(query)]

    async def get_last_runs(
        self, task_ids: Sequence[str], outcomes: Sequence[str]
    ) -> dict[str, RunRecord]:
        """One statement: for each task, an index seek to its newest record with one of
        ``outcomes``."""
        ids = list(dict.fromkeys(task_ids))
        if not ids or not outcomes:
            return {}
        t = self.runs_table
        wanted = list(outcomes)
        if self._postgres:
            # FROM unnest(:ids) AS w CROSS JOIN LATERAL (SELECT ... LIMIT 1)
            w = (
                sa.func.unnest(sa.bindparam(None, ids, postgresql.ARRAY(sa.Unicode)))
                .table_valued("task_id")
                .render_derived("w")
            )
            latest = (
                sa.select(*self._record_columns())
                .where(t.c.task_id == w.c.task_id, t.c.outcome.in_(wanted))
                .order_by(t.c.at.desc(), t.c.seq.desc())
                .limit(1)
                .lateral("latest")
            )
            query = sa.select(*latest.c).select_from(w).join(latest, sa.true())
        else:
            # WHERE seq IN (SELECT (SELECT seq ... LIMIT 1) FROM json_each(:ids))
            w = sa.func.json_each(json.dumps(ids)).table_valued("value")
            r = t.alias("r")
            newest = (
                sa.select(r.c.seq)
                .where(r.c.task_id == w.c.value, r.c.outcome.in_(wanted))
                .order_by(r.c.at.desc(), r.c.seq.desc())
                .limit(1)
                .scalar_subquery()
            )
            query = sa.select(*self._record_columns()).where(
                t.c.seq.in_(sa.select(newest).select_from(w))
            )
        rows = await self._fetch(query)
        return {record.task_id: record for record in map(_record, rows)}

    async def prune_runs(self, now: datetime, max_age: float, max_per_task: int) -> None:
        t = self.runs_table
        old = sa.select(t.c.seq).where(t.c.at < now.timestamp() - max_age)
        await self._delete_bounded(old.order_by(t.c.at, t.c.seq))
        touched, self._runs_touched = self._runs_touched, set()
        try:
            if self._runs_swept == max_per_task:
                ids = sorted(touched)
            else:
                # First prune of this instance, or another max_per_task: every task that
                # has too many records (one pass over the (task_id, ...) index).
                over = (
                    sa.select(t.c.task_id)
                    .group_by(t.c.task_id)
                    .having(sa.func.count() > max_per_task)
                )
                ids = [row.task_id for row in await self._fetch(over)]
            rank = sa.func.row_number().over(
                partition_by=t.c.task_id, order_by=(t.c.at.desc(), t.c.seq.desc())
            )
            for start in range(0, len(ids), _PRUNE_TASKS):
                chunk = ids[start : start + _PRUNE_TASKS]
                ranked = (
                    sa.select(t.c.seq, rank.label("rank"))
                    .where(self._among(t.c.task_id, chunk))
                    .subquery("ranked")
                )
                await self._delete_bounded(
                    sa.select(ranked.c.seq).where(ranked.c.rank > max_per_task)
                )
        except BaseException:
            self._runs_touched |= touched
            raise
        self._runs_swept = max_per_task

    async def _delete_bounded(self, victims: sa.Select[Any]) -> None:
        """Delete the rows whose ``seq`` ``victims`` selects, :data:`PRUNE_BATCH` at a time
        (each statement commits on its own: short locks)."""
        t = self.runs_table
        stmt = sa.delete(t).where(t.c.seq.in_(victims.limit(PRUNE_BATCH).scalar_subquery()))

        async def delete(conn: AsyncConnection) -> int:
            return (await conn.execute(stmt)).rowcount

        while await self._run(delete, write=True) >= PRUNE_BATCH:
            pass
