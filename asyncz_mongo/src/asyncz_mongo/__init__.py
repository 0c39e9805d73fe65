"""MongoDB task store for asyncz, on PyMongo's asyncio driver (``AsyncMongoClient``).

Install ``asyncz-mongo`` and use it as ``MongoDBStore(...)``, ``{"type": "mongodb"}`` (or
``"mongo"``) in configuration, ``from asyncz.stores.mongo import MongoDBStore`` or
``from asyncz.stores import MongoDBStore``.

One document per task, keyed by the task id::

    {
        "_id": "<task id>",
        "next_run_time": 1767225600.0,   # POSIX seconds (a double), null while paused
        "payload": b"...",               # the task state encoded by the store's serializer
        "lease_owner": null,             # the store instance processing the task right now
        "lease_until": 0.0,              # POSIX seconds; the lease lapses after this
    }

A document that cannot be restored also carries ``"unrestorable": "<reason>"`` and keeps
its former run time in ``"broken_next_run_time"`` (``next_run_time`` becomes null, so due
queries skip it). It stays until it is deleted, replaced, or restorable again (checked the
next time the store connects).

Due tasks are *claimed* before the scheduler sees them: one conditional ``update_many``
sets a lease on the due documents that nobody holds, and only the documents that carry this
store's lease are returned; write-backs are conditional on the lease. Two schedulers sharing
a collection therefore never both take the same due run. A scheduler that dies between the
claim and the write-back delays the runs it held by at most ``claim_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pymongo import ASCENDING, AsyncMongoClient, DeleteOne, ReplaceOne, UpdateOne
from pymongo.errors import (
    BulkWriteError,
    ConfigurationError,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
)

from asyncz.exceptions import ConflictingIdError, TaskLookupError, TaskRestoreError
from asyncz.stores.base import LoopThread, PersistentStore

if TYPE_CHECKING:
    from pymongo.asynchronous.collection import AsyncCollection

    from asyncz.schedulers.base import BaseScheduler
    from asyncz.tasks import Task

__all__ = ["MongoDBStore"]

__version__ = "0.1.0"

_DUPLICATE_KEY = 11000
# An index with the same keys but other options already exists (e.g. made by another tool).
_INDEX_CONFLICTS = {85, 86}

_NO_LEASE: dict[str, Any] = {"lease_owner": None, "lease_until": 0.0}

Document = dict[str, Any]


def _stamp(when: Any) -> float | None:
    return when.timestamp() if isinstance(when, datetime) else None


class MongoDBStore(PersistentStore):
    """Stores tasks in a MongoDB collection, one document per task.

    :param database: database name (not empty).
    :param collection: collection name (not empty).
    :param client: an :class:`pymongo.AsyncMongoClient` to use instead of making one. It
        is used on the store's I/O thread (an ``AsyncMongoClient`` is bound to the event
        loop it is first used on), so do not use it elsewhere, and it is not closed by
        the store.
    :param url: a ``mongodb://`` or ``mongodb+srv://`` connection string (PyMongo's
        ``host``).
    :param serializer: a serializer or its alias; ``"json"`` by default.
    :param poll_interval: seconds between checks for tasks added or changed by *other*
        schedulers sharing the collection (``None``, the default, never polls: set it when
        sharing).
    :param claim_timeout: seconds a claimed due task stays reserved for the store that
        claimed it if that store never writes it back (it died mid-pass).
    :param client_options: passed to :class:`~pymongo.AsyncMongoClient` (``host``,
        ``port``, ``username``, ``serverSelectionTimeoutMS``, ``tz_aware``...).

    The client is created (and its options validated) here, without any I/O; the
    connection is made on the store's own I/O thread once the scheduler starts it.
    """

    def __init__(
        self,
        database: str = "asyncz",
        collection: str = "tasks",
        client: AsyncMongoClient[Any] | None = None,
        url: str | None = None,
        serializer: Any = None,
        *,
        poll_interval: float | None = None,
        claim_timeout: float = 60.0,
        **client_options: Any,
    ) -> None:
        super().__init__(serializer=serializer)
        if not isinstance(database, str) or not database:
            raise ValueError("MongoDBStore needs a database name; got an empty one")
        if not isinstance(collection, str) or not collection:
            raise ValueError("MongoDBStore needs a collection name; got an empty one")
        for name, value in (("poll_interval", poll_interval), ("claim_timeout", claim_timeout)):
            if value is None and name == "poll_interval":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a number of seconds > 0, not {value!r}")
        if client is not None:
            if url is not None or client_options:
                raise TypeError("MongoDBStore takes either client or connection options, not both")
            if not isinstance(client, AsyncMongoClient):
                raise TypeError(
                    f"client must be a pymongo.AsyncMongoClient, not {type(client).__name__} "
                    "(the store does its I/O with PyMongo's asyncio driver)"
                )
        if url is not None:
            if "host" in client_options:
                raise TypeError("MongoDBStore takes url or host, not both")
            client_options["host"] = url
        self.database = database
        self.collection = collection
        self.poll_interval = float(poll_interval) if poll_interval is not None else None
        self.claim_timeout = float(claim_timeout)
        self._client_options = client_options
        self._owns_client = client is None
        # Validates the options now; an AsyncMongoClient does no I/O until it is used.
        self.client: AsyncMongoClient[Any] = client or self._make_client()
        self._client_used = False
        self._thread: LoopThread | None = None
        self._ready: asyncio.Future[AsyncCollection[Any]] | None = None
        #: Identifies this store instance in the leases it takes.
        self._owner = uuid.uuid4().hex
        #: Ids this store has claimed and not written back yet (touched on its loop only).
        self._claimed: set[str] = set()
        #: Write-backs that failed because the server was unreachable, retried first.
        self._unsaved: dict[str, UpdateOne | DeleteOne] = {}

    def _make_client(self) -> AsyncMongoClient[Any]:
        try:
            return AsyncMongoClient(**self._client_options)
        except ConfigurationError as exc:  # PyMongo's: an unknown or invalid client option
            raise ValueError(f"MongoDBStore: {exc}") from exc

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self, scheduler: BaseScheduler, alias: str) -> None:
        """Start the I/O thread; the connection is made there on first use.

        Never suspends, so it may be driven inline by a scheduler whose other stores are in
        memory.
        """
        await super().start(scheduler, alias)
        if self._thread is not None:
            return
        if self._client_used:
            if not self._owns_client:
                raise RuntimeError(
                    "MongoDBStore was given a client that a previous run already used on its "
                    "own event loop; give it a new AsyncMongoClient to start it again"
                )
            # The previous client is closed and bound to the previous I/O loop.
            self.client = self._make_client()
        self._client_used = True
        self._thread = LoopThread(f"asyncz-store-{alias}")
        self.io_loop = self._thread.start()

    async def shutdown(self) -> None:
        """Close the client (if the store made it) and stop the I/O thread."""
        thread, self._thread = self._thread, None
        ready, self._ready = self._ready, None
        try:
            if ready is not None and not ready.done():
                ready.cancel()
            if self._owns_client and thread is not None:
                await self.client.close()
        finally:
            self._claimed.clear()
            self._unsaved.clear()
            self.io_loop = None
            if thread is not None:
                # From the I/O thread itself: the loop stops after this coroutine returns.
                thread.stop()

    async def _collection(self) -> AsyncCollection[Any]:
        """The collection, once its index exists (made on first use, retried after errors)."""
        ready = self._ready
        if ready is None or (ready.done() and ready.exception() is not None):
            ready = self._ready = asyncio.ensure_future(self._prepare())
        return await asyncio.shield(ready)

    async def _prepare(self) -> AsyncCollection[Any]:
        collection: AsyncCollection[Any] = self.client[self.database][self.collection]
        try:
            await collection.create_index([("next_run_time", ASCENDING)])
        except OperationFailure as exc:
            if exc.code not in _INDEX_CONFLICTS:
                raise
            self.logger.warning(
                "Collection %s.%s already has a different index on next_run_time: %s",
                self.database,
                self.collection,
                exc,
            )
        await self._recheck_unrestorable(collection)
        return collection

    async def _recheck_unrestorable(self, collection: AsyncCollection[Any]) -> None:
        """Restore flagged documents that decode again (e.g. the function was put back);
        report the others."""
        async for doc in collection.find({"unrestorable": {"$exists": True}}):
            task_id = doc["_id"]
            try:
                self.decode_task(task_id, bytes(doc["payload"]))
            except TaskRestoreError as exc:
                self.report_unrestorable(task_id, exc.reason)
            except Exception as exc:  # a document without a usable payload
                self.report_unrestorable(task_id, f"{type(exc).__name__}: {exc}")
            else:
                await collection.update_one(
                    {"_id": task_id, "payload": doc["payload"]},
                    {
                        "$set": {"next_run_time": doc.get("broken_next_run_time")},
                        "$unset": {"unrestorable": "", "broken_next_run_time": ""},
                    },
                )
                self.logger.info("Stored task %r can be restored again", task_id)

    # -- encoding ------------------------------------------------------------------------------
    def _document(self, task: Task) -> Document:
        return {
            "_id": task.id,
            "next_run_time": _stamp(task.next_run_time),
            "payload": self.encode_task(task),
            **_NO_LEASE,
        }

    async def _restore(self, collection: AsyncCollection[Any], doc: Document) -> Task | None:
        """Decode a document; a broken one is flagged, reported and ``None`` returned."""
        task_id = doc["_id"]
        reason = doc.get("unrestorable")
        if reason is not None:
            self.report_unrestorable(task_id, str(reason))
            return None
        payload = doc.get("payload")
        try:
            if not isinstance(payload, bytes):
                raise TaskRestoreError(task_id, f"payload is {type(payload).__name__}, not bytes")
            return self.decode_task(task_id, payload)
        except TaskRestoreError as exc:
            reason = exc.reason
        await collection.update_one(
            {"_id": task_id, "payload": payload},
            {
                "$set": {
                    "unrestorable": reason,
                    "broken_next_run_time": doc.get("next_run_time"),
                    "next_run_time": None,
                    **_NO_LEASE,
                }
            },
        )
        self._claimed.discard(task_id)
        self.report_unrestorable(task_id, reason)
        return None

    async def _restore_all(
        self, collection: AsyncCollection[Any], docs: Iterable[Document]
    ) -> list[Task]:
        tasks = []
        for doc in docs:
            task = await self._restore(collection, doc)
            if task is not None:
                tasks.append(task)
        return tasks

    # -- queries ---------------------------------------------------------------------------
    async def lookup_task(self, task_id: str) -> Task | None:
        collection = await self._collection()
        doc = await collection.find_one({"_id": task_id})
        return None if doc is None else await self._restore(collection, doc)

    def _free(self, wall: float) -> Document:
        """Documents no other store is processing (this store may take its own back)."""
        return {"$or": [{"lease_until": {"$lt": wall}}, {"lease_owner": self._owner}]}

    async def get_due_tasks(self, now: datetime, limit: int | None = None) -> list[Task]:
        collection = await self._collection()
        await self._flush_unsaved(collection)
        tasks: list[Task] = []
        seen: list[str] = []
        while limit is None or len(tasks) < limit:
            wall = time.time()
            # "$ne": None keeps paused tasks out on servers whose "$lte" matches null.
            due = {"next_run_time": {"$lte": now.timestamp(), "$ne": None}, **self._free(wall)}
            query = {**due, "_id": {"$nin": seen}} if seen else due
            wanted = 0 if limit is None else limit - len(tasks)
            cursor = collection.find(query, {"_id": 1}).sort("next_run_time", ASCENDING)
            ids = [doc["_id"] async for doc in cursor.limit(wanted)]
            if not ids:
                break
            seen.extend(ids)
            # Claim them: only the documents still due and free take this store's lease.
            lease = {"lease_owner": self._owner, "lease_until": wall + self.claim_timeout}
            await collection.update_many({"_id": {"$in": ids}, **due}, {"$set": lease})
            docs = await collection.find({"_id": {"$in": ids}, **lease}).to_list()
            docs.sort(key=lambda doc: (doc["next_run_time"], ids.index(doc["_id"])))
            self._claimed.update(doc["_id"] for doc in docs)
            restored = await self._restore_all(collection, docs)
            tasks.extend(restored)
            if len(restored) == len(ids) or (wanted and len(ids) < wanted):
                break
            # Some were unrestorable (now flagged, out of the due query) or taken by another
            # store: fill the batch with the next ones.
        return tasks

    async def get_next_run_time(self) -> datetime | None:
        collection = await self._collection()
        scheduled = {"next_run_time": {"$ne": None}}
        first = await collection.find_one(
            scheduled,
            {"next_run_time": 1, "lease_until": 1, "lease_owner": 1},
            sort=[("next_run_time", ASCENDING)],
        )
        if first is None:
            return None
        wall = time.time()
        if first.get("lease_until", 0.0) < wall or first.get("lease_owner") == self._owner:
            return datetime.fromtimestamp(first["next_run_time"], timezone.utc)
        # The earliest task is held by another store that is processing it: the next moment
        # for this one is its earliest free task or the earliest lease to lapse.
        free = await collection.find_one(
            {**scheduled, **self._free(wall)},
            {"next_run_time": 1},
            sort=[("next_run_time", ASCENDING)],
        )
        held = await collection.find_one(
            {**scheduled, "lease_until": {"$gte": wall, "$ne": None}},
            {"lease_until": 1},
            sort=[("lease_until", ASCENDING)],
        )
        stamps = [d[k] for d, k in ((free, "next_run_time"), (held, "lease_until")) if d]
        return datetime.fromtimestamp(min(stamps), timezone.utc) if stamps else None

    async def get_all_tasks(self) -> list[Task]:
        collection = await self._collection()
        cursor = collection.find({}).sort([("next_run_time", ASCENDING), ("_id", ASCENDING)])
        docs = await cursor.to_list()
        # MongoDB sorts null first; paused tasks go last.
        scheduled = [doc for doc in docs if doc.get("next_run_time") is not None]
        paused = [doc for doc in docs if doc.get("next_run_time") is None]
        return await self._restore_all(collection, scheduled + paused)

    async def get_unrestorable(self) -> dict[str, str]:
        collection = await self._collection()
        cursor = collection.find({"unrestorable": {"$exists": True}}, {"unrestorable": 1})
        return {doc["_id"]: str(doc["unrestorable"]) async for doc in cursor}

    # -- writes ------------------------------------------------------------------------------
    async def add_task(self, task: Task) -> None:
        doc = self._document(task)
        collection = await self._collection()
        try:
            await collection.insert_one(doc)
        except DuplicateKeyError:
            raise ConflictingIdError(task.id, self.alias) from None

    async def add_tasks(self, tasks: Sequence[Task], replace_existing: bool = False) -> None:
        docs = [self._document(task) for task in tasks]
        if not docs:
            return
        collection = await self._collection()
        if replace_existing:
            await collection.bulk_write(
                [ReplaceOne({"_id": doc["_id"]}, doc, upsert=True) for doc in docs]
            )
            for doc in docs:
                self._claimed.discard(doc["_id"])
                self._unsaved.pop(doc["_id"], None)
            return
        try:
            await collection.insert_many(docs, ordered=True)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if errors and errors[0].get("code") == _DUPLICATE_KEY:
                task_id = docs[errors[0]["index"]]["_id"]
                raise ConflictingIdError(task_id, self.alias) from None
            raise

    @staticmethod
    def _replacement(doc: Document) -> Document:
        """The update that makes a stored document hold ``doc`` (leaving any lease alone)."""
        return {
            "$set": {"next_run_time": doc["next_run_time"], "payload": doc["payload"]},
            "$unset": {"unrestorable": "", "broken_next_run_time": ""},
        }

    async def update_task(self, task: Task) -> None:
        doc = self._document(task)
        collection = await self._collection()
        result = await collection.update_one({"_id": task.id}, self._replacement(doc))
        self._unsaved.pop(task.id, None)  # this newer write wins over a pending write-back
        if result.matched_count == 0:
            raise TaskLookupError(task.id, self.alias)

    async def update_tasks(self, tasks: Iterable[Task]) -> None:
        """Write back tasks in one bulk write; a claimed task is written only while this
        store still holds its lease, which is released.

        When the server cannot be reached the write-backs are kept and retried before the
        next claim, so that the runs just made are not repeated when it comes back.
        """
        operations: dict[str, UpdateOne] = {}
        for task in tasks:
            doc = self._document(task)
            if task.id in self._claimed:
                operations[task.id] = UpdateOne(
                    {"_id": task.id, "lease_owner": self._owner},
                    {
                        "$set": {
                            "next_run_time": doc["next_run_time"],
                            "payload": doc["payload"],
                            **_NO_LEASE,
                        }
                    },
                )
            else:
                operations[task.id] = UpdateOne({"_id": task.id}, self._replacement(doc))
        if operations:
            await self._write(operations, {})

    async def delete_tasks(self, task_ids: Iterable[str]) -> None:
        """Delete in one bulk write; a claimed task only while this store holds its lease."""
        deletes: dict[str, DeleteOne] = {}
        for task_id in task_ids:
            condition: Document = {"_id": task_id}
            if task_id in self._claimed:
                condition["lease_owner"] = self._owner
            deletes[task_id] = DeleteOne(condition)
        if deletes:
            await self._write({}, deletes)

    async def _write(self, updates: dict[str, UpdateOne], deletes: dict[str, DeleteOne]) -> None:
        collection = await self._collection()
        try:
            await collection.bulk_write([*updates.values(), *deletes.values()], ordered=False)
        except ConnectionFailure:
            for task_id in (*updates, *deletes):
                self._unsaved.pop(task_id, None)
            self._unsaved.update(updates)
            self._unsaved.update(deletes)
            raise
        self._claimed.difference_update(updates)
        self._claimed.difference_update(deletes)

    async def _flush_unsaved(self, collection: AsyncCollection[Any]) -> None:
        if not self._unsaved:
            return
        pending = dict(self._unsaved)
        await collection.bulk_write(list(pending.values()), ordered=False)
        for task_id in pending:
            if self._unsaved.get(task_id) is pending[task_id]:
                del self._unsaved[task_id]
            self._claimed.discard(task_id)

    async def delete_task(self, task_id: str) -> None:
        collection = await self._collection()
        result = await collection.delete_one({"_id": task_id})
        self._claimed.discard(task_id)
        self._unsaved.pop(task_id, None)
        if result.deleted_count == 0:
            raise TaskLookupError(task_id, self.alias)

    async def remove_all_tasks(self) -> None:
        collection = await self._collection()
        await collection.delete_many({})
        self._claimed.clear()
        self._unsaved.clear()

    def __repr__(self) -> str:
        return (
            f"<MongoDBStore alias={self.alias!r} database={self.database!r} "
            f"collection={self.collection!r}>"
        )
