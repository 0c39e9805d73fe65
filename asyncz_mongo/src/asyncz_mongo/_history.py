"""Run history of the MongoDB store, in the collection ``<collection>.runs``.

One document per record (records are never updated; the ``_id`` is the server's
``ObjectId``, so a ``run_id`` given twice is simply kept twice)::

    {
        "_id": ObjectId("..."),
        "task_id": "<task id>",
        "run_id": "...",
        "at": 1767225600.25,               # RunRecord.time: finished_at, else submitted_at...
        "scheduled_run_time": 1767225600.0, # every time a POSIX double (null when unset)
        "outcome": "success",
        ...                                 # the other RunRecord fields as they are
    }

Data path: the scheduler's history recorder -> :meth:`MongoHistory.add_runs` (a batch: one
``insert_many``) -> documents, read newest first (``at`` then ``_id`` descending) by
:meth:`~MongoHistory.get_runs` through the index ``(task_id, at desc)`` (one task) or
``(at)`` (every task). :meth:`~MongoHistory.get_last_runs` is one aggregation (``$sort`` then
``$group`` with ``$first``). :meth:`~MongoHistory.prune_runs` deletes by age with one
``delete_many`` on ``at`` and, per task, all but the newest ``max_per_task`` records: one
aggregation lists the ``_id`` s past the limit, deleted :data:`PRUNE_BATCH` at a time. The per
task pass covers the whole collection on the first prune of a store instance (or when
``max_per_task`` changed), afterwards only the tasks this instance wrote records of since
(every node prunes what it wrote), so its work follows the records written, not the
collection's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pymongo import ASCENDING, DESCENDING

from asyncz.stores.base import PersistentStore
from asyncz.tasks.runs import RunRecord

if TYPE_CHECKING:
    from pymongo.asynchronous.collection import AsyncCollection

__all__ = ["PRUNE_BATCH", "RUN_INDEXES", "MongoHistory"]

#: Records one pruning ``delete_many`` removes at most (it repeats while there are more).
PRUNE_BATCH = 5000
#: The indexes of ``<collection>.runs``: one task's records newest first, and every task's
#: (and pruning by age).
RUN_INDEXES: tuple[list[tuple[str, int]], ...] = (
    [("task_id", ASCENDING), ("at", DESCENDING)],
    [("at", ASCENDING)],
)
#: Newest first; records that ended at the same instant in the order they were written.
_NEWEST_FIRST = [("at", DESCENDING), ("_id", DESCENDING)]
_TIME_FIELDS = ("scheduled_run_time", "submitted_at", "started_at", "finished_at")
_UTC = timezone.utc


def _document(record: RunRecord) -> dict[str, Any]:
    doc = record._asdict()
    for name in _TIME_FIELDS:
        when = doc[name]
        if when is not None:
            doc[name] = when.timestamp()
    doc["at"] = record.time.timestamp()
    return doc


def _record(doc: dict[str, Any]) -> RunRecord:
    for name in _TIME_FIELDS:
        stamp = doc.get(name)
        if stamp is not None:
            doc[name] = datetime.fromtimestamp(stamp, _UTC)
    return RunRecord.from_data(doc)


def _outcomes(outcome: str | Sequence[str]) -> list[str]:
    return [outcome] if isinstance(outcome, str) else list(outcome)


class MongoHistory(PersistentStore):
    """The four history methods of the store contract, on ``<collection>.runs``."""

    keeps_history = True

    #: Tasks this instance wrote records of since its last per-task prune.
    _runs_touched: set[str]
    #: The ``max_per_task`` of this instance's last whole-collection prune (``None``: none yet).
    _runs_swept: int | None

    def _init_history(self) -> None:
        self._runs_touched = set()
        self._runs_swept = None

    async def _runs(self) -> AsyncCollection[Any]:
        """``<collection>.runs``, once the store is prepared (its indexes made)."""
        raise NotImplementedError

    async def add_runs(self, records: Sequence[RunRecord]) -> None:
        """One ``insert_many`` for the batch."""
        if not records:
            return
        runs = await self._runs()
        await runs.insert_many([_document(record) for record in records], ordered=False)
        self._runs_touched.update(record.task_id for record in records)

    async def get_runs(
        self,
        task_id: str | None = None,
        *,
        limit: int | None = 50,
        since: datetime | None = None,
        outcome: str | Sequence[str] | None = None,
    ) -> list[RunRecord]:
        query: dict[str, Any] = {}
        if task_id is not None:
            query["task_id"] = task_id
        if since is not None:
            query["at"] = {"$gte": since.timestamp()}
        if outcome is not None:
            query["outcome"] = {"$in": _outcomes(outcome)}
        runs = await self._runs()
        cursor = runs.find(query).sort(_NEWEST_FIRST)
        if limit is not None:
            if limit <= 0:
                return []
            cursor = cursor.limit(limit)
        return [_record(doc) async for doc in cursor]

    async def get_last_runs(
        self, task_ids: Sequence[str], outcomes: Sequence[str]
    ) -> dict[str, RunRecord]:
        """One aggregation: the records of ``task_ids`` with one of ``outcomes``, sorted by
        task and newest first (the ``(task_id, at desc)`` index), the first of each task."""
        ids = list(dict.fromkeys(task_ids))
        if not ids or not outcomes:
            return {}
        runs = await self._runs()
        pipeline: list[dict[str, Any]] = [
            {"$match": {"task_id": {"$in": ids}, "outcome": {"$in": list(outcomes)}}},
            {"$sort": {"task_id": ASCENDING, "at": DESCENDING, "_id": DESCENDING}},
            {"$group": {"_id": "$task_id", "last": {"$first": "$$ROOT"}}},
        ]
        cursor = await runs.aggregate(pipeline)
        return {doc["_id"]: _record(doc["last"]) async for doc in cursor}

    async def prune_runs(self, now: datetime, max_age: float, max_per_task: int) -> None:
        """Delete the records older than ``max_age`` (one ``delete_many`` on the ``at``
        index), then each task's records past its newest ``max_per_task``."""
        runs = await self._runs()
        await runs.delete_many({"at": {"$lt": now.timestamp() - max_age}})
        touched: set[str] | None
        if self._runs_swept == max_per_task:
            touched, self._runs_touched = self._runs_touched, set()
            if not touched:
                return
        else:
            touched = None  # the whole collection: first prune, or another max_per_task
        try:
            await self._prune_per_task(runs, touched, max_per_task)
        except BaseException:
            if touched is not None:
                self._runs_touched |= touched
            raise
        self._runs_swept = max_per_task

    async def _prune_per_task(
        self, runs: AsyncCollection[Any], touched: set[str] | None, max_per_task: int
    ) -> None:
        """One aggregation lists, per task with more than ``max_per_task`` records, the
        ``_id`` s past its newest ``max_per_task``; they are deleted :data:`PRUNE_BATCH` at
        a time."""
        keep = max(max_per_task, 0)
        pipeline: list[dict[str, Any]] = []
        if touched is not None:
            pipeline.append({"$match": {"task_id": {"$in": sorted(touched)}}})
        pipeline += [
            {"$sort": {"task_id": ASCENDING, "at": DESCENDING, "_id": DESCENDING}},
            {"$group": {"_id": "$task_id", "n": {"$sum": 1}, "ids": {"$push": "$_id"}}},
            {"$match": {"n": {"$gt": keep}}},
            {"$project": {"old": {"$slice": ["$ids", keep, "$n"]}}},
        ]
        cursor = await runs.aggregate(pipeline, allowDiskUse=True)
        victims: list[Any] = []
        async for doc in cursor:
            victims.extend(doc["old"])
            while len(victims) >= PRUNE_BATCH:
                batch, victims = victims[:PRUNE_BATCH], victims[PRUNE_BATCH:]
                await runs.delete_many({"_id": {"$in": batch}})
        if victims:
            await runs.delete_many({"_id": {"$in": victims}})
