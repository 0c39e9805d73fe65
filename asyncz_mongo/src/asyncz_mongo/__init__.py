"""MongoDB task store for asyncz, on PyMongo's asyncio driver (``AsyncMongoClient``).

Install ``asyncz-mongo`` and use it as ``MongoDBStore(...)``, ``{"type": "mongodb"}`` (or
``"mongo"``) in configuration, ``from asyncz.stores.mongo import MongoDBStore`` or
``from asyncz.stores import MongoDBStore``.

One document per task, keyed by the task id::

    {
        "_id": "<task id>",
        "next_run_time": 1767225600.0,   # POSIX seconds (a double), null while paused
        "payload": b"...",               # the task state encoded by the store's serializer
        "revision": 7,                   # moved by every write of the task (fencing token)
        "due_at": 1767225600.0,          # next_run_time, or lease_until while claimed
        "lease_owner": null,             # the node (scheduler identity) holding a claim
        "lease_until": null,             # when that claim lapses
        "token": null,                   # random id of the last claim
        "writes": ["..."],               # the last few write-back tokens (after one)
    }

The store is *coordinated* (several schedulers, "nodes", share the collection). A node
claims due tasks with conditional updates: it reads the ids of the earliest documents with
``due_at <= now`` (indexed), then claims them all in one ``update_many`` filtered on those
ids *and* ``due_at <= now`` again, which sets ``lease_owner``, ``lease_until``, ``due_at`` (=
the lease end, so the claim is no longer due for anyone) and a random ``token``; each
document is updated atomically, so of two nodes claiming at once exactly one matches. A
third query reads back the documents carrying the token (payload and revision as claimed).
A batch costs three round trips however many tasks it holds. A write-back is one
``bulk_write`` of ``UpdateOne`` / ``DeleteOne`` filtered by ``_id``, ``revision`` and
``lease_owner`` (refused when a management write or another node came first); when its
counts say some were refused, a read of the documents whose ``writes`` hold its token
tells which (exact even when another node wrote a task in between). A claim whose node died
lapses by itself: its ``due_at`` (the lease end) comes due. Node records live in
``<collection>.nodes``, run history in ``<collection>.runs`` (:mod:`asyncz_mongo._history`).

A document that cannot be restored also carries ``"unrestorable": "<reason>"`` and keeps
its former run time in ``"broken_next_run_time"`` (``next_run_time`` and ``due_at`` become
null, so due queries skip it). It stays until it is deleted, replaced, or restorable again
(checked the next time the store connects). Documents written by an earlier version
(without ``revision``) are given the new fields when a store connects.
"""

from __future__ import annotations

import asyncio
import random
import threading
import uuid
import warnings
from collections.abc import Coroutine, Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pymongo import (
    ASCENDING,
    AsyncMongoClient,
    DeleteOne,
    MongoClient,
    ReturnDocument,
    UpdateOne,
)
from pymongo.errors import (
    BulkWriteError,
    ConfigurationError,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
)

from asyncz.abc import TaskPage
from asyncz.exceptions import (
    ConflictingIdError,
    StaleTaskError,
    TaskLookupError,
    TaskRestoreError,
)
from asyncz.nodes import NODE_RETENTION, NodeInfo
from asyncz.stores.base import is_finished
from asyncz_mongo._history import RUN_INDEXES, MongoHistory
from asyncz_mongo._watch import ChangeWatcher

if TYPE_CHECKING:
    from pymongo.asynchronous.collection import AsyncCollection

    from asyncz.abc import SchedulerHandle
    from asyncz.tasks import Task

__all__ = ["MongoDBStore"]

__version__ = "0.1.0"

_DUPLICATE_KEY = 11000
# An index with the same keys but other options already exists (e.g. made by another tool).
_INDEX_CONFLICTS = {85, 86}
#: Claim attempts per acquire call when other nodes keep taking the candidates first.
_CLAIM_ATTEMPTS = 4
#: Under contention a node reads this many times the candidates it wants and claims a random
#: sample of them, so that nodes claiming at once mostly pick different documents.
_SPREAD = 4
#: Write-back tokens a document keeps (``writes``): a partly refused write-back reads them
#: back to tell which of its writes landed, even when other nodes wrote the task since.
_WRITES_KEPT = 8
#: Poll interval (seconds) of a store whose server has no change streams, unless set.
FALLBACK_POLL = 1.0

Document = dict[str, Any]
#: ``$set`` of a write that ends any claim.
_UNCLAIMED: Document = {"lease_owner": None, "lease_until": None}
_CLEAR_FLAG: Document = {"unrestorable": "", "broken_next_run_time": ""}

_UTC = timezone.utc


def _stamp(when: Any) -> float | None:
    return when.timestamp() if isinstance(when, datetime) else None


def _due(stamp: float) -> Document:
    # "$ne": None keeps paused tasks out on servers whose "$lte" matches null (mongoeco).
    return {"$lte": stamp, "$ne": None}


class MongoDBStore(MongoHistory):
    """Stores tasks in a MongoDB collection, one document per task; shared by several
    schedulers (``coordinated``).

    :param database: database name (not empty).
    :param collection: collection name (not empty). Node records live in the collection
        ``<collection>.nodes`` next to it, run history in ``<collection>.runs``.
    :param client: an :class:`pymongo.AsyncMongoClient` to use instead of making one. It
        is used on the store's I/O loop, which the scheduler gives it (an
        ``AsyncMongoClient`` is bound to the event loop it is first used on), so do not use
        it elsewhere, and it is not closed by the store.
    :param url: a ``mongodb://`` or ``mongodb+srv://`` connection string (PyMongo's
        ``host``).
    :param serializer: a serializer or its alias; ``"json"`` by default.
    :param poll_interval: seconds between checks for tasks added or changed by *other*
        schedulers sharing the collection. ``None`` (the default): none when the server
        has change streams (a replica set: the store hears of changes at once), else every
        :data:`FALLBACK_POLL` seconds.
    :param claim_timeout: ignored (deprecated): claims last ``asyncz.coordination.lease``.
    :param client_options: passed to :class:`~pymongo.AsyncMongoClient` (``host``,
        ``port``, ``username``, ``serverSelectionTimeoutMS``, ``tz_aware``...).

    The client is created (and its options validated) here, without any I/O; the
    connection is made on the store's I/O loop (given by the scheduler: ``uses_io_loop``)
    once the scheduler starts it. When the
    store made its client, a synchronous :class:`pymongo.MongoClient` with the same options
    is also made on first use of :meth:`add_task_sync`.
    """

    uses_io_loop = True
    coordinated = True
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
        claim_timeout: float | None = None,
        **client_options: Any,
    ) -> None:
        super().__init__(serializer=serializer)
        if not isinstance(database, str) or not database:
            raise ValueError("MongoDBStore needs a database name; got an empty one")
        if not isinstance(collection, str) or not collection:
            raise ValueError("MongoDBStore needs a collection name; got an empty one")
        if poll_interval is not None and (
            isinstance(poll_interval, bool)
            or not isinstance(poll_interval, (int, float))
            or poll_interval <= 0
        ):
            raise ValueError(
                f"poll_interval must be a number of seconds > 0, not {poll_interval!r}"
            )
        if claim_timeout is not None:
            warnings.warn(
                "MongoDBStore(claim_timeout=...) is ignored: claims last the scheduler's "
                "lease (asyncz.coordination.lease) and are renewed by its heartbeats",
                DeprecationWarning,
                stacklevel=2,
            )
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
        self._poll_setting = float(poll_interval) if poll_interval is not None else None
        self.poll_interval = self._poll_setting
        self._client_options = client_options
        self._owns_client = client is None
        # Validates the options now; an AsyncMongoClient does no I/O until it is used.
        self.client: AsyncMongoClient[Any] = client or self._make_client()
        self._client_used = False
        self._started = False
        self._ready: asyncio.Future[AsyncCollection[Any]] | None = None
        #: The collection is ready (indexes made); set on the I/O loop, read from any thread.
        self._prepared = False
        #: Other nodes took candidates of this store's last claim: spread the next one.
        self._contended = False
        #: Cross-node wake-ups from a change stream, when the server has them.
        self._watcher: ChangeWatcher | None = None
        #: The synchronous client of add_task_sync, made on first use.
        self._sync_client: MongoClient[Any] | None = None
        self._sync_lock = threading.Lock()
        self._init_history()

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

    @property
    def notifications(self) -> str:
        """How this store hears of other schedulers' changes: ``"change streams"`` or
        ``"polling"`` (known once started)."""
        return "change streams" if self._watcher is not None else "polling"

    async def start(self, scheduler: SchedulerHandle, alias: str) -> None:
        """Connect and prepare the collection (indexes, documents of an earlier version), on
        the store's I/O loop: a server that cannot be reached fails the start. Opens a
        change stream for cross-node wake-ups when the server has them; polls otherwise."""
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
        collection = await self._collection()
        self._watcher = await ChangeWatcher.open(collection, scheduler, self.logger)
        if self._watcher is None:
            self.poll_interval = self._poll_setting or FALLBACK_POLL
        else:
            self.poll_interval = self._poll_setting

    async def shutdown(self) -> None:
        """Close the clients (if the store made them)."""
        started, self._started = self._started, False
        ready, self._ready = self._ready, None
        watcher, self._watcher = self._watcher, None
        self._prepared = False
        if watcher is not None:
            await watcher.close()
        if ready is not None and not ready.done():
            ready.cancel()
        self._close_sync_client()
        if self._owns_client and started:
            await self.client.close()

    async def _collection(self) -> AsyncCollection[Any]:
        """The collection, once it is prepared (on first use, retried after errors)."""
        ready = self._ready
        if ready is None or (ready.done() and ready.exception() is not None):
            ready = self._ready = asyncio.ensure_future(self._prepare())
        return await asyncio.shield(ready)

    def _nodes(self) -> AsyncCollection[Any]:
        return self.client[self.database][f"{self.collection}.nodes"]

    async def _runs(self) -> AsyncCollection[Any]:
        await self._collection()
        return self.client[self.database][f"{self.collection}.runs"]

    async def _prepare(self) -> AsyncCollection[Any]:
        collection: AsyncCollection[Any] = self.client[self.database][self.collection]
        for field in ("next_run_time", "due_at", "lease_owner"):
            try:
                await collection.create_index([(field, ASCENDING)])
            except OperationFailure as exc:
                if exc.code not in _INDEX_CONFLICTS:
                    raise
                self.logger.warning(
                    "Collection %s.%s already has a different index on %s: %s",
                    self.database,
                    self.collection,
                    field,
                    exc,
                )
        runs = self.client[self.database][f"{self.collection}.runs"]
        for keys in RUN_INDEXES:
            await runs.create_index(keys)
        # Documents of an earlier version (no revision, no claim fields); idempotent, so
        # stores starting at once may all run it.
        result = await collection.update_many(
            {"revision": {"$exists": False}},
            [{"$set": {"revision": 1, "due_at": "$next_run_time", **_UNCLAIMED, "token": None}}],
        )
        if result.modified_count:
            self.logger.info("Gave %d stored task(s) a revision", result.modified_count)
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
                former = doc.get("broken_next_run_time")
                await collection.update_one(
                    {"_id": task_id, "payload": doc["payload"]},
                    {
                        "$set": {"next_run_time": former, "due_at": former},
                        "$unset": _CLEAR_FLAG,
                        "$inc": {"revision": 1},
                    },
                )
                self.logger.info("Stored task %r can be restored again", task_id)

    # -- encoding ------------------------------------------------------------------------------
    def _fields(self, task: Task) -> Document:
        """What a write of ``task`` sets (the claim ends, revision apart)."""
        stamp = _stamp(task.next_run_time)
        return {
            "next_run_time": stamp,
            "payload": self.encode_task(task),
            "due_at": stamp,
            **_UNCLAIMED,
            "token": None,
        }

    def _new_document(self, task: Task) -> Document:
        return {"_id": task.id, **self._fields(task), "revision": 1}

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
            task = self.decode_task(task_id, payload)
        except TaskRestoreError as exc:
            reason = exc.reason
        else:
            revision = doc.get("revision")
            task.revision = revision if isinstance(revision, int) else 0
            return task
        await collection.update_one(
            {"_id": task_id, "payload": payload},
            {
                "$set": {
                    "unrestorable": reason,
                    "broken_next_run_time": doc.get("next_run_time"),
                    "next_run_time": None,
                    "due_at": None,
                    **_UNCLAIMED,
                },
                "$inc": {"revision": 1},
            },
        )
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

    async def get_due_tasks(self, now: datetime, limit: int | None = None) -> list[Task]:
        """The due tasks by next run time, claimed or not (a plain read: the scheduler
        claims with :meth:`acquire_due_tasks`)."""
        collection = await self._collection()
        tasks: list[Task] = []
        skip = 0
        while True:
            cursor = collection.find({"next_run_time": _due(now.timestamp())})
            cursor = cursor.sort([("next_run_time", ASCENDING), ("_id", ASCENDING)]).skip(skip)
            if limit is not None:
                cursor = cursor.limit(limit - len(tasks))
            docs = await cursor.to_list()
            restored = await self._restore_all(collection, docs)
            tasks.extend(restored)
            skip += len(restored)  # flagged ones left the query
            if limit is None or len(tasks) >= limit or len(docs) < limit or not docs:
                return tasks

    async def get_next_run_time(self) -> datetime | None:
        """The earliest ``due_at``: a claimed task counts as its lease end."""
        collection = await self._collection()
        doc = await collection.find_one(
            {"due_at": {"$ne": None}}, {"due_at": 1}, sort=[("due_at", ASCENDING)]
        )
        return None if doc is None else datetime.fromtimestamp(doc["due_at"], _UTC)

    async def get_all_tasks(self) -> list[Task]:
        collection = await self._collection()
        cursor = collection.find({}).sort([("next_run_time", ASCENDING), ("_id", ASCENDING)])
        docs = await cursor.to_list()
        # MongoDB sorts null first; paused tasks go last.
        scheduled = [doc for doc in docs if doc.get("next_run_time") is not None]
        paused = [doc for doc in docs if doc.get("next_run_time") is None]
        return await self._restore_all(collection, scheduled + paused)

    async def get_task_page(self, cursor: str | None, limit: int) -> TaskPage:
        """``limit`` documents by ``_id`` after ``cursor`` (the last id of the page before)."""
        collection = await self._collection()
        query = {} if cursor is None else {"_id": {"$gt": cursor}}
        docs = await collection.find(query).sort("_id", ASCENDING).limit(limit).to_list()
        tasks: list[Task] = []
        unrestorable: dict[str, str] = {}
        for doc in docs:
            task = await self._restore(collection, doc)
            if task is not None:
                tasks.append(task)
            else:  # flagged before, or just now (then read the reason back)
                flagged = (
                    doc
                    if "unrestorable" in doc
                    else await collection.find_one({"_id": doc["_id"]}, {"unrestorable": 1})
                )
                if flagged is not None and flagged.get("unrestorable") is not None:
                    unrestorable[doc["_id"]] = str(flagged["unrestorable"])
        following = docs[-1]["_id"] if len(docs) >= limit else None
        return TaskPage(tasks, unrestorable, following)

    async def get_unrestorable(self) -> dict[str, str]:
        collection = await self._collection()
        cursor = collection.find({"unrestorable": {"$exists": True}}, {"unrestorable": 1})
        return {doc["_id"]: str(doc["unrestorable"]) async for doc in cursor}

    # -- coordination ----------------------------------------------------------------------
    async def acquire_due_tasks(
        self, node: str, now: datetime, lease: float, limit: int
    ) -> list[Task]:
        """Claim up to ``limit`` due tasks for ``node``: per batch, the ids of the earliest
        due documents, one ``update_many`` that claims those still due, one read of the
        claimed documents. Candidates another node claimed first are replaced by others
        (a few attempts); while other nodes compete, each attempt claims a random sample of
        the ``_SPREAD * limit`` earliest, so that the nodes do not all go for the same ones."""
        collection = await self._collection()
        stamp = now.timestamp()
        until = stamp + lease
        tasks: list[Task] = []
        for _ in range(_CLAIM_ATTEMPTS):
            wanted = limit - len(tasks)
            if wanted <= 0:
                break
            window = wanted * _SPREAD if self._contended else wanted
            cursor = collection.find({"due_at": _due(stamp)}, {"_id": 1})
            candidates = await cursor.sort("due_at", ASCENDING).limit(window).to_list()
            if not candidates:
                break
            ids = [doc["_id"] for doc in candidates]
            if len(ids) > wanted:
                picked = set(random.sample(range(len(ids)), wanted))
                ids = [task_id for i, task_id in enumerate(ids) if i in picked]
            token = uuid.uuid4().hex
            claim = {"due_at": until, "lease_owner": node, "lease_until": until, "token": token}
            result = await collection.update_many(
                {"_id": {"$in": ids}, "due_at": _due(stamp)}, {"$set": claim}
            )
            restored: list[Task] = []
            if result.modified_count:
                found = await collection.find({"_id": {"$in": ids}, "token": token}).to_list()
                order = {task_id: i for i, task_id in enumerate(ids)}
                found.sort(key=lambda doc: order[doc["_id"]])
                restored = await self._restore_all(collection, found)
                tasks.extend(restored)
            self._contended = result.modified_count < len(ids)
            if len(candidates) < window:
                break  # nothing else is due
            if not self._contended and len(restored) == len(ids):
                break  # got all it asked for
        return tasks

    async def release_tasks(self, node: str, tasks: Sequence[Task]) -> list[Task]:
        """One ``bulk_write`` of fenced writes (``_id``, ``revision``, ``lease_owner``); a
        second read only when its counts say that some were refused."""
        if not tasks:
            return []
        collection = await self._collection()
        token = uuid.uuid4().hex
        updates: list[Task] = []
        deletes: list[Task] = []
        operations: list[UpdateOne | DeleteOne] = []
        for task in tasks:
            fence = {"_id": task.id, "revision": task.revision, "lease_owner": node}
            if is_finished(task):
                deletes.append(task)
                operations.append(DeleteOne(fence))
            else:
                updates.append(task)
                change = {
                    "$set": self._fields(task),
                    "$inc": {"revision": 1},
                    "$push": {"writes": {"$each": [token], "$slice": -_WRITES_KEPT}},
                }
                operations.append(UpdateOne(fence, change))
        result = await collection.bulk_write(operations, ordered=False)
        if result.matched_count == len(updates) and result.deleted_count == len(deletes):
            written = {id(task) for task in tasks}
        else:
            written = await self._written(collection, token, updates, deletes, result)
        for task in updates:
            if id(task) in written:
                task.revision += 1
        return [task for task in tasks if id(task) in written]

    async def _written(
        self,
        collection: AsyncCollection[Any],
        token: str,
        updates: list[Task],
        deletes: list[Task],
        result: Any,
    ) -> set[int]:
        """Which writes of a partly refused write-back were applied: an update left its
        token among the document's last write-back tokens (``writes``, kept even if other
        nodes wrote the task since); a delete left nothing, which is ours when the count of
        deletions says so."""
        mine: set[str] = set()
        if updates:
            query = {"_id": {"$in": [task.id for task in updates]}, "writes": token}
            mine = {doc["_id"] async for doc in collection.find(query, {"_id": 1})}
        written = {id(task) for task in updates if task.id in mine}
        if not deletes:
            return written
        cursor = collection.find({"_id": {"$in": [task.id for task in deletes]}}, {"_id": 1})
        stored = {doc["_id"] async for doc in cursor}
        gone = [task for task in deletes if task.id not in stored]
        if result.deleted_count == len(gone):
            written.update(id(task) for task in gone)
        elif result.deleted_count:
            # Some of the deleted documents were deleted by someone else (an operator, or a
            # node that took them over): which ones is unknown, so none counts as written.
            # Their last runs are not made rather than possibly made twice.
            self.logger.warning(
                "Cannot tell which of %d finished task(s) this node deleted (%s); their last "
                "runs are not submitted",
                len(gone),
                ", ".join(task.id for task in gone[:5]),
            )
        return written

    async def heartbeat(self, node: NodeInfo, extend_claims: bool = True) -> None:
        """Record the node, extend its claims (``extend_claims``) and prune old records
        (concurrently).

        Only claims with less than half a lease left are extended (to ``beat + lease``):
        heartbeats come every quarter lease, so no live node's claim lapses, and a pass
        shorter than half a lease costs no rewrite of the documents it holds (each is a
        write on the server)."""
        collection = await self._collection()
        beat = node.last_heartbeat.timestamp()
        until = beat + node.lease
        writes: list[Coroutine[Any, Any, Any]] = [
            self._record(node),
            self._nodes().delete_many({"ends_at": {"$lt": beat - NODE_RETENTION}}),
        ]
        if extend_claims:
            writes.append(
                collection.update_many(
                    {
                        "lease_owner": node.identity,
                        "lease_until": {"$lt": beat + node.lease / 2, "$ne": None},
                    },
                    {"$set": {"lease_until": until, "due_at": until}},
                )
            )
        await asyncio.gather(*writes)

    async def _record(self, node: NodeInfo) -> None:
        end = node.stopped_at or node.expires_at
        doc = {**node.to_dict(), "ends_at": end.timestamp()}
        await self._nodes().replace_one({"_id": node.identity}, doc, upsert=True)

    async def remove_node(self, node: NodeInfo) -> None:
        """Record the stopped node and end its claims (each task due at its run time)."""
        collection = await self._collection()
        await self._record(node)
        await collection.update_many(
            {"lease_owner": node.identity},
            [{"$set": {"due_at": "$next_run_time", **_UNCLAIMED, "token": None}}],
        )

    async def get_nodes(self) -> list[NodeInfo]:
        await self._collection()
        cursor = self._nodes().find({}).sort("_id", ASCENDING)
        return [NodeInfo.from_dict(doc) async for doc in cursor]

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
        query, update = self._insertion(self._new_document(task))
        collection = await self._collection()
        try:
            result = await collection.update_one(query, update, upsert=True)
        except DuplicateKeyError:  # a concurrent insertion of the same id
            raise ConflictingIdError(task.id, self.alias) from None
        if result.upserted_id is None:
            raise ConflictingIdError(task.id, self.alias)
        task.revision = 1

    def add_task_sync(self, task: Task) -> bool:
        """Insert the task with a synchronous :class:`pymongo.MongoClient` on the calling
        thread (one round trip, no hop to the I/O thread).

        ``False`` (the scheduler then awaits :meth:`add_task`) when the store was given its
        client (the connection settings are unknown) or has not connected yet on its I/O
        loop (that first operation makes the indexes).
        """
        if not self._owns_client or not self._prepared:
            return False
        query, update = self._insertion(self._new_document(task))
        collection = self._sync_client_for_adds()[self.database][self.collection]
        try:
            result = collection.update_one(query, update, upsert=True)
        except DuplicateKeyError:  # a concurrent insertion of the same id
            raise ConflictingIdError(task.id, self.alias) from None
        if result.upserted_id is None:
            raise ConflictingIdError(task.id, self.alias)
        task.revision = 1
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
        if not tasks:
            return
        collection = await self._collection()
        if replace_existing:
            # A replacement moves the revision (and ends any claim); read the new ones back.
            await collection.bulk_write(
                [
                    UpdateOne(
                        {"_id": task.id},
                        {
                            "$set": self._fields(task),
                            "$unset": _CLEAR_FLAG,
                            "$inc": {"revision": 1},
                        },
                        upsert=True,
                    )
                    for task in tasks
                ]
            )
            ids = [task.id for task in tasks]
            cursor = collection.find({"_id": {"$in": ids}}, {"revision": 1})
            revisions = {doc["_id"]: doc.get("revision", 0) async for doc in cursor}
            for task in tasks:
                task.revision = revisions.get(task.id, 0)
            return
        try:
            await collection.insert_many([self._new_document(task) for task in tasks], ordered=True)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if errors and errors[0].get("code") == _DUPLICATE_KEY:
                index = errors[0]["index"]
                for task in tasks[:index]:
                    task.revision = 1
                raise ConflictingIdError(tasks[index].id, self.alias) from None
            raise
        for task in tasks:
            task.revision = 1

    async def update_task(self, task: Task) -> None:
        """Compare-and-set on the revision when ``task.revision`` is set; ends any claim."""
        collection = await self._collection()
        query: Document = {"_id": task.id}
        if task.revision:
            query["revision"] = task.revision
        doc = await collection.find_one_and_update(
            query,
            {"$set": self._fields(task), "$unset": _CLEAR_FLAG, "$inc": {"revision": 1}},
            projection={"revision": 1},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            stored = await collection.find_one({"_id": task.id}, {"revision": 1})
            if stored is None:
                raise TaskLookupError(task.id, self.alias)
            raise StaleTaskError(task.id, self.alias, task.revision, stored.get("revision"))
        task.revision = doc["revision"]

    async def update_tasks(self, tasks: Iterable[Task]) -> None:
        """Write tasks back in one bulk write by ``_id`` (unconditional; gone ones skipped)."""
        operations = [
            UpdateOne(
                {"_id": task.id},
                {"$set": self._fields(task), "$unset": _CLEAR_FLAG, "$inc": {"revision": 1}},
            )
            for task in tasks
        ]
        if operations:
            collection = await self._collection()
            await collection.bulk_write(operations, ordered=False)

    async def delete_tasks(self, task_ids: Iterable[str]) -> None:
        """Delete in one bulk write by ``_id``."""
        deletes = [DeleteOne({"_id": task_id}) for task_id in task_ids]
        if deletes:
            collection = await self._collection()
            await collection.bulk_write(deletes, ordered=False)

    async def delete_task(self, task_id: str) -> None:
        collection = await self._collection()
        result = await collection.delete_one({"_id": task_id})
        if result.deleted_count == 0:
            raise TaskLookupError(task_id, self.alias)

    async def remove_all_tasks(self) -> None:
        collection = await self._collection()
        await collection.delete_many({})

    def __repr__(self) -> str:
        return (
            f"<MongoDBStore alias={self.alias!r} database={self.database!r} "
            f"collection={self.collection!r}>"
        )
