"""MongoDB task store for asyncz, on PyMongo's asyncio driver (``AsyncMongoClient``).

Install ``asyncz-mongo`` and use it as ``MongoDBStore(...)``, ``{"type": "mongodb"}`` (or
``"mongo"``) in configuration, ``from asyncz.stores.mongo import MongoDBStore`` or
``from asyncz.stores import MongoDBStore``.

One document per task, keyed by the task id::

    {
        "_id": "<task id>",
        "next_run_time": 1767225600.0,   # POSIX seconds (a double), null while paused
        "payload": b"...",               # the task state encoded by the store's serializer
    }

A document that cannot be restored also carries ``"unrestorable": "<reason>"`` and keeps
its former run time in ``"broken_next_run_time"`` (``next_run_time`` becomes null, so due
queries skip it). It stays until it is deleted, replaced, or restorable again (checked the
next time the store connects).

Due tasks are *claimed* before the scheduler sees them, in one small document of the
collection ``<collection>.leases``, the lease registry::

    {
        "_id": "leases",
        "version": 42,                   # bumped by every change
        "holders": {"<store id>": {"until": 1767225660.0, "ids": ["<task id>", ...]}},
    }

A store claims a batch with one compare-and-set of the registry (conditional on the version
it read): its due query leaves out the ids other stores hold, and the claim only succeeds
if no other store claimed or released anything since, so two schedulers sharing a
collection never both take the same due run. Each store prunes the entries whose lease
lapsed when it changes the registry. A claim therefore costs two writes per *batch*
instead of one per task, and write-backs are plain writes by ``_id``. A store writes back
only while its lease is safely valid (more than half of ``claim_timeout`` left); otherwise it
first renews the lease, which succeeds only if its entry is still in the registry, i.e. no
other store took the runs after the lease lapsed; runs that were taken are not written
back. A scheduler that dies between the claim and the write-back delays the runs it held by
at most ``claim_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pymongo import (
    ASCENDING,
    AsyncMongoClient,
    DeleteOne,
    MongoClient,
    ReplaceOne,
    UpdateOne,
)
from pymongo.errors import (
    BulkWriteError,
    ConfigurationError,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
)

from asyncz.exceptions import ConflictingIdError, TaskLookupError, TaskRestoreError
from asyncz.stores.base import PersistentStore

if TYPE_CHECKING:
    from pymongo.asynchronous.collection import AsyncCollection

    from asyncz.abc import SchedulerHandle
    from asyncz.tasks import Task

__all__ = ["MongoDBStore"]

__version__ = "0.1.0"

_DUPLICATE_KEY = 11000
# An index with the same keys but other options already exists (e.g. made by another tool).
_INDEX_CONFLICTS = {85, 86}
#: ``_id`` of the lease registry document in ``<collection>.leases``.
_REGISTRY = "leases"
#: Ids held by other stores are filtered out of the due query on the client up to this many
#: (no per-document ``$nin`` evaluation on the server); beyond it the query says ``$nin``.
_CLIENT_SIDE_SKIP = 1024
#: Compare-and-set attempts on the registry before a claim gives up (and the pass is retried).
_MAX_ATTEMPTS = 100

Document = dict[str, Any]
WriteOp = UpdateOne | DeleteOne


def _stamp(when: Any) -> float | None:
    return when.timestamp() if isinstance(when, datetime) else None


def _until(entry: Any) -> float:
    until = entry.get("until") if isinstance(entry, dict) else None
    return float(until) if isinstance(until, (int, float)) else 0.0


class MongoDBStore(PersistentStore):
    """Stores tasks in a MongoDB collection, one document per task.

    :param database: database name (not empty).
    :param collection: collection name (not empty). The lease registry lives in the
        collection ``<collection>.leases`` next to it.
    :param client: an :class:`pymongo.AsyncMongoClient` to use instead of making one. It
        is used on the store's I/O loop, which the scheduler gives it (an
        ``AsyncMongoClient`` is bound to the event loop it is first used on), so do not use
        it elsewhere, and it is not closed by the store.
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
    connection is made on the store's I/O loop (given by the scheduler: ``uses_io_loop``)
    once the scheduler starts it. When the
    store made its client, a synchronous :class:`pymongo.MongoClient` with the same options
    is also made on first use of :meth:`add_task_sync`.
    """

    uses_io_loop = True
    kind = "mongodb"
    connection_errors = (ConnectionFailure,)

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
        self._started = False
        self._ready: asyncio.Future[AsyncCollection[Any]] | None = None
        #: The collection is ready (index made); set on the I/O loop, read from any thread.
        self._prepared = False
        #: Identifies this store instance in the lease registry.
        self._owner = uuid.uuid4().hex
        #: Ids this store has claimed and not written back yet (touched on its loop only).
        self._claimed: set[str] = set()
        #: When this store's lease lapses (its entry in the registry; 0.0: no entry).
        self._lease_until = 0.0
        #: The registry as last read or written by this store: (version, holders); None when
        #: it must be read again.
        self._registry: tuple[Any, dict[str, Any]] | None = None
        #: Serializes this store's registry changes (made on the I/O loop by start()).
        self._registry_lock: asyncio.Lock | None = None
        #: Write-backs that failed because the server was unreachable, retried first.
        self._unsaved: dict[str, WriteOp] = {}
        #: The synchronous client of add_task_sync, made on first use.
        self._sync_client: MongoClient[Any] | None = None
        self._sync_lock = threading.Lock()

    def _make_client(self) -> AsyncMongoClient[Any]:
        try:
            return AsyncMongoClient(**self._client_options)
        except ConfigurationError as exc:  # PyMongo's: an unknown or invalid client option
            raise ValueError(f"MongoDBStore: {exc}") from exc

    # -- lifecycle ---------------------------------------------------------------------------
    def address(self) -> str | None:
        seeds = self.client.topology_description.server_descriptions()
        hosts = ",".join(f"{host}:{port}" for host, port in seeds) or "?"
        return f"mongodb://{hosts}/{self.database}.{self.collection}"

    def address_options(self) -> tuple[str, ...]:
        if not self._owns_client:
            return ("client",)
        return ("url",) if "host" in self._client_options else ("host", "port")

    async def start(self, scheduler: SchedulerHandle, alias: str) -> None:
        """Connect and prepare the collection (its index), on the store's I/O loop: a server
        that cannot be reached fails the start."""
        await super().start(scheduler, alias)
        if self._started:
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
        self._started = True
        self._registry_lock = asyncio.Lock()
        await self._collection()

    async def shutdown(self) -> None:
        """Close the clients (if the store made them)."""
        started, self._started = self._started, False
        ready, self._ready = self._ready, None
        self._prepared = False
        try:
            if ready is not None and not ready.done():
                ready.cancel()
            self._close_sync_client()
            if self._owns_client and started:
                await self.client.close()
        finally:
            self._claimed.clear()
            self._unsaved.clear()
            self._registry = None
            self._lease_until = 0.0

    async def _collection(self) -> AsyncCollection[Any]:
        """The collection, once its index exists (made on first use, retried after errors)."""
        ready = self._ready
        if ready is None or (ready.done() and ready.exception() is not None):
            ready = self._ready = asyncio.ensure_future(self._prepare())
        return await asyncio.shield(ready)

    def _leases(self) -> AsyncCollection[Any]:
        return self.client[self.database][f"{self.collection}.leases"]

    def _lock(self) -> asyncio.Lock:
        if self._registry_lock is None:  # used without start(), e.g. by a test on its loop
            self._registry_lock = asyncio.Lock()
        return self._registry_lock

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
        self._prepared = True
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

    # -- the lease registry --------------------------------------------------------------------
    async def _read_registry(self) -> tuple[Any, dict[str, Any]]:
        """Read the registry; claims of this store that are no longer in its entry (another
        store took them after the lease lapsed) are dropped, with their pending writes."""
        doc = await self._leases().find_one({"_id": _REGISTRY})
        # The version as stored (None: no registry yet) is what the next change is
        # conditional on; a malformed registry is replaced by that change.
        version = doc.get("version") if doc else None
        holders = doc.get("holders") if doc else None
        if not isinstance(holders, dict):
            holders = {}
        self._registry = (version, holders)
        mine = holders.get(self._owner)
        kept = set(mine.get("ids") or ()) if isinstance(mine, dict) else set()
        self._lease_until = _until(mine)
        lost = self._claimed - kept
        if lost:
            self._claimed -= lost
            for task_id in lost:
                self._unsaved.pop(task_id, None)
            self.logger.warning(
                "The lease on %d claimed task(s) lapsed and another scheduler took them; "
                "their write-back is not applied: %s",
                len(lost),
                ", ".join(sorted(lost)[:10]),
            )
        return self._registry

    def _held_by_others(self, wall: float) -> dict[str, float]:
        """Task id -> lease end, for the ids other stores hold right now."""
        held: dict[str, float] = {}
        if self._registry is None:
            return held
        for owner, entry in self._registry[1].items():
            until = _until(entry)
            if owner == self._owner or until < wall:
                continue
            for task_id in entry.get("ids") or ():
                held[task_id] = max(until, held.get(task_id, 0.0))
        return held

    async def _publish(self, until: float, claim: Sequence[str] = ()) -> bool:
        """Compare-and-set the registry: this store's entry becomes its claims plus ``claim``,
        held until ``until`` (no entry when there are none), and lapsed entries of other
        stores are dropped. ``False`` when the registry changed since it was last read."""
        if self._registry is None:
            await self._read_registry()
        assert self._registry is not None
        version, holders = self._registry
        wall = time.time()
        entries = {
            owner: entry
            for owner, entry in holders.items()
            if owner != self._owner and _until(entry) >= wall
        }
        ids = self._claimed.union(claim)
        if ids:
            entries[self._owner] = {"until": until, "ids": sorted(ids)}
        valid = isinstance(version, int) and not isinstance(version, bool)
        following = version + 1 if valid else 1
        update = {"$set": {"version": following, "holders": entries}}
        try:
            # The first change creates the document; a concurrent creation is a conflict.
            result = await self._leases().update_one(
                {"_id": _REGISTRY, "version": version}, update, upsert=version is None
            )
        except DuplicateKeyError:
            changed = True
        except BaseException:
            self._registry = None  # the outcome is unknown
            raise
        else:
            changed = result.matched_count == 0 and result.upserted_id is None
        if changed:
            self._registry = None
            return False
        self._registry = (following, entries)
        self._lease_until = until if ids else 0.0
        return True

    async def _contended(self, attempt: int) -> int:
        """After a compare-and-set lost to another store: back off a little, with jitter,
        once it happens repeatedly; give up (the pass is retried) after many."""
        attempt += 1
        if attempt >= _MAX_ATTEMPTS:
            raise RuntimeError(
                f"MongoDBStore: the lease registry {self.collection}.leases changed on each of "
                f"{attempt} attempts to change it"
            )
        if attempt > 2:
            await asyncio.sleep(random.random() * min(0.01 * attempt, 0.2))
        return attempt

    async def _keep_lease(self) -> None:
        """Make sure the claims are held for a while yet before they are written back: renew
        the lease when less than half of ``claim_timeout`` is left. Claims another store took
        after the lease lapsed are dropped."""
        if time.time() < self._lease_until - self.claim_timeout / 2:
            return
        async with self._lock():
            # The compare-and-set fails if the registry changed since this store last saw
            # it; the registry is then read again, which drops the claims that were taken.
            attempt = 0
            while self._claimed:
                if await self._publish(time.time() + self.claim_timeout):
                    return
                attempt = await self._contended(attempt)

    async def _release(self) -> None:
        """Publish that the claims written back are no longer held (best effort: until it
        succeeds other stores see them held until the lease lapses)."""
        try:
            async with self._lock():
                for _ in range(8):
                    if await self._publish(self._lease_until):
                        return
        except PyMongoError as exc:
            self.logger.debug("Releasing claims failed (they lapse by themselves): %s", exc)

    # -- queries ---------------------------------------------------------------------------
    async def lookup_task(self, task_id: str) -> Task | None:
        collection = await self._collection()
        doc = await collection.find_one({"_id": task_id})
        return None if doc is None else await self._restore(collection, doc)

    async def _find_due(
        self,
        collection: AsyncCollection[Any],
        stamp: float,
        wanted: int | None,
        skip: set[str],
    ) -> list[Document]:
        """Up to ``wanted`` due documents in run time order, leaving out the ``skip`` ids."""
        # "$ne": None keeps paused tasks out on servers whose "$lte" matches null.
        query: Document = {"next_run_time": {"$lte": stamp, "$ne": None}}
        if len(skip) > _CLIENT_SIDE_SKIP:
            query["_id"] = {"$nin": list(skip)}
            skip = set()
        cursor = collection.find(query).sort("next_run_time", ASCENDING)
        if wanted is not None:
            size = wanted + len(skip)
            cursor = cursor.limit(size).batch_size(size)
        docs: list[Document] = []
        try:
            async for doc in cursor:
                if doc["_id"] in skip:
                    continue
                docs.append(doc)
                if wanted is not None and len(docs) >= wanted:
                    break
        finally:
            await cursor.close()
        return docs

    async def get_due_tasks(self, now: datetime, limit: int | None = None) -> list[Task]:
        """Claim and return due tasks: one query and one registry change per batch."""
        collection = await self._collection()
        await self._flush_unsaved()
        stamp = now.timestamp()
        tasks: list[Task] = []
        seen: set[str] = set()
        while limit is None or len(tasks) < limit:
            wanted = None if limit is None else limit - len(tasks)
            async with self._lock():
                attempt = 0
                while True:
                    if self._registry is None:
                        await self._read_registry()
                    skip = seen.union(self._held_by_others(time.time()))
                    docs = await self._find_due(collection, stamp, wanted, skip)
                    if not docs:
                        return tasks
                    ids = [doc["_id"] for doc in docs]
                    # Succeeds only if no store claimed or released anything since the
                    # registry was read: then none of these is held by another store.
                    if await self._publish(time.time() + self.claim_timeout, ids):
                        break
                    attempt = await self._contended(attempt)
                self._claimed.update(ids)
            seen.update(ids)
            restored = await self._restore_all(collection, docs)
            tasks.extend(restored)
            if len(restored) == len(docs) or wanted is None or len(docs) < wanted:
                break
            # Some were unrestorable (now flagged, out of the due query): fill the batch.
        return tasks

    async def get_next_run_time(self) -> datetime | None:
        collection = await self._collection()
        async with self._lock():
            await self._read_registry()
        held = self._held_by_others(time.time())
        # A task another store holds is this store's only once its lease lapses.
        cursor = collection.find({"next_run_time": {"$ne": None}}, {"next_run_time": 1})
        cursor = cursor.sort("next_run_time", ASCENDING).limit(len(held) + 1)
        best: float | None = None
        try:
            async for doc in cursor:
                stamp = doc["next_run_time"]
                if best is not None and stamp >= best:
                    break
                lapse = held.get(doc["_id"])
                if lapse is None:  # the earliest task this store may take
                    best = stamp
                    break
                if best is None or max(stamp, lapse) < best:
                    best = max(stamp, lapse)
        finally:
            await cursor.close()
        return None if best is None else datetime.fromtimestamp(best, timezone.utc)

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
    @staticmethod
    def _insertion(doc: Document) -> tuple[Document, Document]:
        """Filter and update of an upsert that inserts ``doc`` only if its id is free.

        Same outcome as ``insert_one`` (the same document; an existing one is left alone and
        reported as a conflict), but servers that check a new ``_id`` against every stored
        document on insert (mongoeco) take their indexed ``_id`` lookup path instead.
        """
        fields = {key: value for key, value in doc.items() if key != "_id"}
        return {"_id": doc["_id"]}, {"$setOnInsert": fields}

    async def add_task(self, task: Task) -> None:
        query, update = self._insertion(self._document(task))
        collection = await self._collection()
        try:
            result = await collection.update_one(query, update, upsert=True)
        except DuplicateKeyError:  # a concurrent insertion of the same id
            raise ConflictingIdError(task.id, self.alias) from None
        if result.upserted_id is None:
            raise ConflictingIdError(task.id, self.alias)

    def add_task_sync(self, task: Task) -> bool:
        """Insert the task with a synchronous :class:`pymongo.MongoClient` on the calling
        thread (one round trip, no hop to the I/O thread).

        ``False`` (the scheduler then awaits :meth:`add_task`) when the store was given its
        client (the connection settings are unknown) or has not connected yet on its I/O
        loop (that first operation makes the index).
        """
        if not self._owns_client or not self._prepared:
            return False
        query, update = self._insertion(self._document(task))
        collection = self._sync_client_for_adds()[self.database][self.collection]
        try:
            result = collection.update_one(query, update, upsert=True)
        except DuplicateKeyError:  # a concurrent insertion of the same id
            raise ConflictingIdError(task.id, self.alias) from None
        if result.upserted_id is None:
            raise ConflictingIdError(task.id, self.alias)
        return True

    def _sync_client_for_adds(self) -> MongoClient[Any]:
        with self._sync_lock:
            if self._sync_client is None:
                self._sync_client = MongoClient(**self._client_options)
            return self._sync_client

    def _close_sync_client(self) -> None:
        with self._sync_lock:
            client, self._sync_client = self._sync_client, None
        if client is not None:
            client.close()

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
        """The update that makes a stored document hold ``doc``."""
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
        """Write back tasks in one bulk write by ``_id``; a claimed task only while this
        store still holds its lease, which is released.

        When the server cannot be reached the write-backs are kept and retried before the
        next claim, so that the runs just made are not repeated when it comes back.
        """
        operations: dict[str, WriteOp] = {}
        for task in tasks:
            doc = self._document(task)
            update: Document
            if task.id in self._claimed:
                update = {
                    "$set": {"next_run_time": doc["next_run_time"], "payload": doc["payload"]}
                }
            else:
                update = self._replacement(doc)
            operations[task.id] = UpdateOne({"_id": task.id}, update)
        if operations:
            await self._write(operations)

    async def delete_tasks(self, task_ids: Iterable[str]) -> None:
        """Delete in one bulk write by ``_id``; a claimed task only while this store holds
        its lease."""
        deletes: dict[str, WriteOp] = {task_id: DeleteOne({"_id": task_id}) for task_id in task_ids}
        if deletes:
            await self._write(deletes)

    async def _write(self, operations: dict[str, WriteOp], *, pending: bool = False) -> None:
        collection = await self._collection()
        operations = dict(operations)
        held = [task_id for task_id in operations if task_id in self._claimed]
        try:
            if held:
                await self._keep_lease()
                for task_id in held:
                    if task_id not in self._claimed:  # lost: another store took it
                        del operations[task_id]
            if operations:
                # Unordered: one failed write does not hold back the others.
                await collection.bulk_write(list(operations.values()), ordered=False)
        except ConnectionFailure:
            if not pending:
                self._unsaved.update(operations)
            raise
        for task_id, operation in operations.items():
            if not pending or self._unsaved.get(task_id) is operation:
                self._unsaved.pop(task_id, None)
        released = [task_id for task_id in held if task_id in operations]
        if released:
            self._claimed.difference_update(released)
            await self._release()

    async def _flush_unsaved(self) -> None:
        if self._unsaved:
            await self._write(self._unsaved, pending=True)

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
        self._unsaved.clear()
        if self._claimed:
            self._claimed.clear()
            await self._release()

    def __repr__(self) -> str:
        return (
            f"<MongoDBStore alias={self.alias!r} database={self.database!r} "
            f"collection={self.collection!r}>"
        )
