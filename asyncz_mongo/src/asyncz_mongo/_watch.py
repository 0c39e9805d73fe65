"""Cross-node wake-ups for :class:`~asyncz_mongo.MongoDBStore` from a MongoDB change stream.

Data path: when the store starts, :meth:`ChangeWatcher.open` opens a change stream on the
task collection (``insert``, ``update`` and ``replace`` events); a server without change
streams (a standalone ``mongod``, mongoeco) refuses it and the store polls instead. A task
on its store's I/O loop reads the events and tells the scheduler the new ``due_at``
(``scheduler.wake(when)``), so a task added or moved by another node runs on time.
A broken stream is reopened after the last event it delivered.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

if TYPE_CHECKING:
    from pymongo.asynchronous.change_stream import AsyncChangeStream
    from pymongo.asynchronous.collection import AsyncCollection

    from asyncz.abc import SchedulerHandle

__all__ = ["ChangeWatcher"]

_PIPELINE = [{"$match": {"operationType": {"$in": ["insert", "update", "replace"]}}}]
#: Seconds before a broken stream is opened again.
_REOPEN_DELAY = 1.0


def due_at(change: dict[str, Any]) -> float | None:
    """The ``due_at`` a change event sets, if it sets one."""
    if change.get("operationType") == "update":
        fields = change.get("updateDescription", {}).get("updatedFields", {})
    else:
        fields = change.get("fullDocument") or {}
    value = fields.get("due_at")
    return float(value) if isinstance(value, (int, float)) else None


class ChangeWatcher:
    """Reads a change stream on the store's I/O loop and wakes the scheduler."""

    def __init__(
        self,
        collection: AsyncCollection[Any],
        stream: AsyncChangeStream[Any],
        scheduler: SchedulerHandle,
        logger: logging.Logger,
    ) -> None:
        self._collection = collection
        self._scheduler = scheduler
        self._logger = logger
        self._task = asyncio.ensure_future(self._run(stream))

    @classmethod
    async def open(
        cls, collection: AsyncCollection[Any], scheduler: SchedulerHandle, logger: logging.Logger
    ) -> ChangeWatcher | None:
        """A watcher, or ``None`` when the server has no change streams."""
        try:
            stream = await collection.watch(_PIPELINE)
        except ConnectionFailure:
            raise
        except OperationFailure as exc:
            logger.info("No change streams on this server (%s): polling for changes", exc)
            return None
        return cls(collection, stream, scheduler, logger)

    async def _run(self, stream: AsyncChangeStream[Any]) -> None:
        while True:
            try:
                async with stream:
                    async for change in stream:
                        when = due_at(change)
                        if when is not None:
                            self._scheduler.wake(datetime.fromtimestamp(when, timezone.utc))
            except asyncio.CancelledError:
                raise
            except PyMongoError as exc:
                self._logger.warning("Change stream broke (%s); reopening it", exc)
            resume = stream.resume_token
            while True:
                await asyncio.sleep(_REOPEN_DELAY)
                try:
                    stream = await self._collection.watch(_PIPELINE, resume_after=resume)
                    break
                except PyMongoError as exc:
                    if resume is not None and isinstance(exc, OperationFailure):
                        resume = None  # the point to resume from is gone: start afresh
                    self._logger.debug("Reopening the change stream failed: %s", exc)
            # Changes made while no stream was open are unknown (when it did not resume):
            # look at the store now.
            self._scheduler.wake(None)

    async def close(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except (asyncio.CancelledError, PyMongoError):
            pass
