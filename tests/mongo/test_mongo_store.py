"""MongoDBStore beyond the contract: construction, plugin wiring, the indexes, the document
layout and its migration, claims and write-backs (round trips, partly refused batches, stores
claiming at once), two schedulers on one collection, unrestorable documents, restarts of the
server (graceful and killed)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Coroutine, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import pymongo
import pytest
from pymongo import monitoring
from pymongo.errors import ConnectionFailure

from asyncz import events as ev
from asyncz.exceptions import ConfigurationError, ConflictingIdError
from asyncz.registry import create
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores.base import BaseStore, LoopThread, attach_io_loop, call
from asyncz.testing import MISSING_FUNCTION, assert_same_task, functions, make_task, wait_until
from asyncz_mongo import FALLBACK_POLL, MongoDBStore
from asyncz_mongo.testing import TemporaryMongoeco

T = TypeVar("T")
UTC = timezone.utc
DATABASE = "asyncz_tests"


def at(seconds: float) -> datetime:
    return datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


# -- construction and wiring (no server needed) -----------------------------------------------
def test_constructs_without_a_server_and_accepts_asyncz_keywords() -> None:
    store = MongoDBStore()
    assert (store.database, store.collection) == ("asyncz", "tasks")
    store = MongoDBStore(database="db", collection="jobs", host="localhost", port=27999)
    seeds = set(store.client.topology_description.server_descriptions())
    assert seeds == {("localhost", 27999)}
    assert store.io_loop is None


def test_an_empty_database_name_is_an_error() -> None:
    with pytest.raises(ValueError, match="database"):
        MongoDBStore(database="")
    with pytest.raises(ValueError, match="collection"):
        MongoDBStore(collection="")


def test_bad_client_options_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="Unknown option"):
        MongoDBStore(notAnOption=1)
    with pytest.raises(TypeError):
        MongoDBStore(url="mongodb://localhost", host="localhost")
    with pytest.raises(TypeError, match="AsyncMongoClient"):
        MongoDBStore(client=pymongo.MongoClient(connect=False))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="poll_interval"):
        MongoDBStore(poll_interval=0)
    with pytest.warns(DeprecationWarning, match=r"asyncz\.coordination\.lease"):
        MongoDBStore(claim_timeout=60)


def test_import_paths_and_aliases() -> None:
    from asyncz.stores import MongoDBStore as from_stores
    from asyncz.stores.mongo import MongoDBStore as from_shim

    assert from_stores is from_shim is MongoDBStore
    for alias in ("mongodb", "mongo"):
        store = create(
            "store",
            {"type": alias, "database": "cfg", "url": "mongodb://localhost:1"},
            key="asyncz.stores.default",
        )
        assert isinstance(store, MongoDBStore)
        assert store.database == "cfg"
    with pytest.raises(ConfigurationError, match=r"asyncz\.stores\.default"):
        create("store", {"type": "mongodb", "database": ""}, key="asyncz.stores.default")


def test_a_scheduler_assembled_from_configuration_alone() -> None:
    scheduler = AsyncIOScheduler(
        global_config={
            "asyncz.stores.default": {"type": "mongodb", "database": "x", "collection": "y"}
        }
    )
    store = scheduler.stores["default"]
    assert isinstance(store, MongoDBStore)
    assert (store.database, store.collection) == ("x", "y")


# -- against the server -------------------------------------------------------------------------
class Harness:
    """Runs store coroutines the way the scheduler does, from a driver loop of its own."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.collection = f"t-{uuid.uuid4().hex[:12]}"
        self.driver = LoopThread("test-driver")
        self.loop = self.driver.start()
        self.host = AsyncIOScheduler()
        self.restore_events: list[Any] = []
        self.host.add_listener(self.restore_events.append, ev.TASK_RESTORE_FAILED)
        self.stores: list[BaseStore] = []

    def store(self, **options: Any) -> MongoDBStore:
        options.setdefault("serverSelectionTimeoutMS", 3000)
        store = MongoDBStore(database=DATABASE, collection=self.collection, url=self.url, **options)
        self.run(store.start(self.host, "default"), store)
        self.stores.append(store)
        return store

    def run(self, coro: Coroutine[Any, Any, T], store: BaseStore) -> T:
        future = asyncio.run_coroutine_threadsafe(call(store, coro), self.loop)
        return future.result(timeout=60)

    def raw(self) -> pymongo.collection.Collection[dict[str, Any]]:
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            self.url, serverSelectionTimeoutMS=5000
        )
        return client[DATABASE][self.collection]

    def close(self) -> None:
        for store in self.stores:
            try:
                self.run(store.shutdown(), store)
            except Exception:
                pass
        self.driver.stop()


@pytest.fixture
def harness(mongo_url: str) -> Iterator[Harness]:
    harness = Harness(mongo_url)
    try:
        yield harness
    finally:
        harness.close()


pytestmark = pytest.mark.mongo


def test_the_indexes_are_created(harness: Harness) -> None:
    store = harness.store()
    harness.run(store.add_task(make_task("i", at(1))), store)
    keys = [spec["key"] for spec in harness.raw().index_information().values()]
    for field in ("next_run_time", "due_at", "lease_owner"):
        assert [(field, 1)] in keys, keys
    # A second store on the same collection accepts the existing index.
    second = harness.store()
    assert harness.run(second.lookup_task("i"), second) is not None


def test_the_document_layout(harness: Harness) -> None:
    store = harness.store()
    harness.run(store.add_task(make_task("doc", at(1))), store)
    harness.run(store.add_task(make_task("paused", None)), store)
    doc = harness.raw().find_one({"_id": "doc"})
    assert doc is not None
    assert isinstance(doc.pop("payload"), bytes)
    assert doc == {
        "_id": "doc",
        "next_run_time": at(1).timestamp(),
        "due_at": at(1).timestamp(),
        "revision": 1,
        "lease_owner": None,
        "lease_until": None,
        "token": None,
    }
    paused = harness.raw().find_one({"_id": "paused"})
    assert paused is not None
    assert paused["next_run_time"] is None
    assert paused["due_at"] is None
    # A claim moves due_at to the lease end and names the node.
    [claimed] = harness.run(store.acquire_due_tasks("node-a", at(5), 30.0, 10), store)
    doc = harness.raw().find_one({"_id": "doc"}, {"payload": 0})
    assert doc is not None
    assert (doc["due_at"], doc["lease_owner"], doc["lease_until"]) == (
        at(35).timestamp(),
        "node-a",
        at(35).timestamp(),
    )
    assert doc["revision"] == claimed.revision == 1


def test_documents_of_an_earlier_version_are_migrated_at_start(harness: Harness) -> None:
    store = harness.store()
    encoded = {
        "old": store.encode_task(make_task("old", at(1))),
        "old-paused": store.encode_task(make_task("old-paused", None)),
    }
    harness.raw().insert_many(
        [
            {"_id": "old", "next_run_time": at(1).timestamp(), "payload": encoded["old"]},
            {"_id": "old-paused", "next_run_time": None, "payload": encoded["old-paused"]},
        ]
    )
    fresh = harness.store()  # a new process connects: the documents get the new fields
    doc = harness.raw().find_one({"_id": "old"}, {"payload": 0})
    assert doc == {
        "_id": "old",
        "next_run_time": at(1).timestamp(),
        "due_at": at(1).timestamp(),
        "revision": 1,
        "lease_owner": None,
        "lease_until": None,
        "token": None,
    }
    assert harness.raw().find_one({"_id": "old-paused"})["due_at"] is None  # type: ignore[index]
    assert harness.run(fresh.get_next_run_time(), fresh) == at(1)
    claimed = harness.run(fresh.acquire_due_tasks("node-a", at(5), 30.0, 10), fresh)
    assert [(t.id, t.revision) for t in claimed] == [("old", 1)]


# -- add_task_sync: the synchronous path of a running scheduler's add_task ----------------------
def test_add_task_sync_stores_the_task_seen_through_the_async_path(harness: Harness) -> None:
    # Not started (the index is made when it starts): the scheduler is told to use the
    # async path.
    unstarted = MongoDBStore(database=DATABASE, collection=harness.collection, url=harness.url)
    assert unstarted.add_task_sync(make_task("early", at(1))) is False
    store = harness.store()
    harness.run(store.add_task(make_task("async", at(1))), store)
    task = make_task("sync", at(2), args=(1, "two"))
    assert store.add_task_sync(task) is True  # on this (foreign) thread
    assert_same_task(harness.run(store.lookup_task("sync"), store), task)
    assert [t.id for t in harness.run(store.get_all_tasks(), store)] == ["async", "sync"]
    assert harness.run(store.get_next_run_time(), store) == at(1)
    # The same document as the async path stores.
    raw_sync, raw_async = (
        harness.raw().find_one({"_id": "sync"}),
        harness.raw().find_one({"_id": "async"}),
    )
    assert raw_sync is not None
    assert raw_async is not None
    assert list(raw_sync) == list(raw_async)
    assert set(raw_sync) == {
        "_id",
        "next_run_time",
        "payload",
        "due_at",
        "revision",
        "lease_owner",
        "lease_until",
        "token",
    }
    assert task.revision == 1
    assert raw_sync["next_run_time"] == at(2).timestamp()
    assert raw_sync["payload"] == store.encode_task(task)
    # And it is claimed and run like any other.
    due = harness.run(store.acquire_due_tasks("node-a", at(5), 30.0, 10), store)
    assert [t.id for t in due] == ["async", "sync"]


def test_add_task_sync_refuses_an_existing_id_and_names_it(harness: Harness) -> None:
    store = harness.store()
    harness.run(store.add_task(make_task("taken", at(1))), store)
    with pytest.raises(ConflictingIdError, match="taken") as info:
        store.add_task_sync(make_task("taken", at(9)))
    assert info.value.task_id == "taken"
    assert store.add_task_sync(make_task("twice", at(3))) is True
    with pytest.raises(ConflictingIdError, match="twice"):
        store.add_task_sync(make_task("twice", at(4)))
    with pytest.raises(ConflictingIdError, match="twice"):  # and the async path agrees
        harness.run(store.add_task(make_task("twice", at(5))), store)
    # The stored tasks are left as they were.
    assert harness.raw().find_one({"_id": "taken"})["next_run_time"] == at(1).timestamp()  # type: ignore[index]
    assert harness.raw().find_one({"_id": "twice"})["next_run_time"] == at(3).timestamp()  # type: ignore[index]
    assert harness.raw().count_documents({}) == 2


def test_add_task_sync_from_many_threads_shares_one_client(harness: Harness) -> None:
    store = harness.store()
    harness.run(store.get_next_run_time(), store)  # connects
    errors: list[BaseException] = []

    def add(worker: int) -> None:
        try:
            for i in range(10):
                assert store.add_task_sync(make_task(f"w{worker}-{i}", at(i)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(harness.run(store.get_all_tasks(), store)) == 40
    client = store._sync_client
    assert client is not None
    harness.run(store.shutdown(), store)
    assert store._sync_client is None  # closed with the store
    assert store.add_task_sync(make_task("after", at(1))) is False


def test_add_task_sync_without_a_known_url_defers_to_the_async_path(harness: Harness) -> None:
    client: pymongo.AsyncMongoClient[dict[str, Any]] = pymongo.AsyncMongoClient(
        harness.url, serverSelectionTimeoutMS=3000
    )
    store = MongoDBStore(database=DATABASE, collection=harness.collection, client=client)
    harness.run(store.start(harness.host, "default"), store)
    harness.stores.append(store)
    try:
        harness.run(store.add_task(make_task("given", at(1))), store)
        assert store.add_task_sync(make_task("other", at(2))) is False
        assert harness.raw().count_documents({}) == 1
    finally:
        harness.run(client.close(), store)


def test_a_running_scheduler_adds_through_the_sync_client(mongo_url: str) -> None:
    collection = f"sync-{uuid.uuid4().hex[:8]}"
    store = MongoDBStore(
        database=DATABASE, collection=collection, url=mongo_url, serverSelectionTimeoutMS=3000
    )
    scheduler = AsyncIOScheduler(stores={"default": store}, isolated_event_loop=True)
    scheduler.start(paused=True)
    try:
        scheduler.add_task(functions.noop, "interval", hours=1, id="first")  # connects
        scheduler.add_task(functions.noop, "interval", hours=2, id="second")
        assert store._sync_client is not None
        assert {t.id for t in scheduler.get_tasks()} == {"first", "second"}
        with pytest.raises(ConflictingIdError, match="second"):
            scheduler.add_task(functions.noop, "interval", hours=3, id="second")
        task = scheduler.get_task("second")
        assert task is not None
        assert task.trigger.interval == timedelta(hours=2)  # type: ignore[union-attr]
    finally:
        scheduler.remove_all_tasks()
        scheduler.shutdown()


class Commands(monitoring.CommandListener):
    """The commands a client sends, by name (PyMongo's command monitoring)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in {"endSessions", "hello", "isMaster", "ping"}:
            self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def test_a_batch_costs_a_few_round_trips_however_large(harness: Harness) -> None:
    commands = Commands()
    store = harness.store(event_listeners=[commands])
    harness.run(store.add_tasks([make_task(f"b{i:03d}", at(i % 5)) for i in range(120)]), store)
    commands.names.clear()
    claimed = harness.run(store.acquire_due_tasks("node-a", at(10), 30.0, 100), store)
    assert len(claimed) == 100
    assert {f"b{i:03d}" for i in range(120) if i % 5 < 4} <= {t.id for t in claimed}
    assert [t.next_run_time for t in claimed] == sorted(t.next_run_time for t in claimed)
    # ids of the earliest due, claim them all, read the claimed ones back
    assert commands.names == ["find", "update", "find"]
    commands.names.clear()
    for i, task in enumerate(claimed):
        task.next_run_time = None if i % 2 else at(100)
    written = harness.run(store.release_tasks("node-a", claimed), store)
    assert written == claimed
    assert commands.names == ["update", "delete"]  # one bulk write (two commands in it)
    assert all(t.revision == 2 for t in claimed[::2])
    assert harness.raw().count_documents({}) == 70


def test_a_partly_refused_write_back_tells_which_were_written(harness: Harness) -> None:
    store, other = harness.store(), harness.store()
    harness.run(store.add_tasks([make_task(f"p{i}", at(i)) for i in range(4)]), store)
    held = harness.run(store.acquire_due_tasks("node-a", at(10), 60.0, 3), store)
    short = harness.run(store.acquire_due_tasks("node-a", at(10), 1.0, 1), store)
    mine = held + short
    assert [t.id for t in mine] == ["p0", "p1", "p2", "p3"]
    # p3's claim lapses and node-b takes it over; an operator changes p1.
    taken = harness.run(other.acquire_due_tasks("node-b", at(12), 60.0, 9), other)
    assert [t.id for t in taken] == ["p3"]
    changed = harness.run(other.lookup_task("p1"), other)
    assert changed is not None
    harness.run(other.update_task(changed), other)
    for task in mine:
        task.next_run_time = None if task.id in {"p2", "p3"} else at(500)
    written = harness.run(store.release_tasks("node-a", mine), store)
    assert [t.id for t in written] == ["p0", "p2"]
    stored = {doc["_id"]: doc for doc in harness.raw().find({}, {"payload": 0})}
    assert sorted(stored) == ["p0", "p1", "p3"]
    assert stored["p0"]["next_run_time"] == at(500).timestamp()
    assert stored["p1"]["next_run_time"] == at(1).timestamp()  # the operator's write
    assert stored["p3"]["lease_owner"] == "node-b"  # not deleted: node-b holds it


class AfterWriteBack(monitoring.CommandListener):
    """Runs ``action`` (once, blocking the store's I/O loop) when a write-back's first
    command has succeeded, before the store reads back which of its writes landed."""

    def __init__(self) -> None:
        self.action: Any = None

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        action, self.action = self.action, None
        if action is not None and event.command_name == "update":
            action()
        elif action is not None:
            self.action = action

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def test_a_write_that_landed_is_told_even_if_another_node_wrote_the_task_since(
    harness: Harness,
) -> None:
    # node-a writes back p0 (lands) and p1 (refused: node-b took it over); before node-a
    # reads back which landed, node-b claims p0 (due again) and writes it back too. node-a's
    # write of p0 landed: its runs must be submitted, not reported refused.
    hook = AfterWriteBack()
    store = harness.store(event_listeners=[hook])
    # node-b on an I/O loop of its own: it acts while node-a's I/O loop waits for it.
    other_io = LoopThread("node-b-io")
    other = MongoDBStore(database=DATABASE, collection=harness.collection, url=harness.url)
    attach_io_loop(other, other_io.start())
    try:
        harness.run(other.start(harness.host, "default"), other)
        harness.run(store.add_tasks([make_task(f"p{i}", at(i)) for i in range(2)]), store)
        [p0] = harness.run(store.acquire_due_tasks("node-a", at(10), 60.0, 1), store)
        [p1] = harness.run(store.acquire_due_tasks("node-a", at(10), 1.0, 1), store)
        taken = harness.run(other.acquire_due_tasks("node-b", at(12), 60.0, 9), other)
        assert [t.id for t in taken] == ["p1"]

        def node_b_writes_p0() -> None:
            [again] = harness.run(other.acquire_due_tasks("node-b", at(30), 60.0, 9), other)
            assert again.id == "p0"
            again.next_run_time = at(40)
            assert harness.run(other.release_tasks("node-b", [again]), other) == [again]

        hook.action = node_b_writes_p0
        p0.next_run_time = at(20)
        p1.next_run_time = at(20)
        written = harness.run(store.release_tasks("node-a", [p0, p1]), store)
        assert hook.action is None  # node-b did write p0 in between
        assert [t.id for t in written] == ["p0"]
        stored = harness.raw().find_one({"_id": "p0"})
        assert stored is not None
        assert stored["next_run_time"] == at(40).timestamp()
    finally:
        harness.run(other.shutdown(), other)
        other_io.stop()


def test_a_lapsed_claim_nobody_took_is_still_written_back(harness: Harness) -> None:
    store, other = harness.store(), harness.store()
    harness.run(store.add_tasks([make_task("slow", at(1)), make_task("gone", at(2))]), store)
    claimed = harness.run(store.acquire_due_tasks("node-a", at(5), 1.0, 10), store)
    assert len(claimed) == 2
    # Lapsed at at(6), but no other node claimed them meanwhile: the write-back stands.
    claimed[0].next_run_time = at(50)
    claimed[1].next_run_time = None
    assert harness.run(store.release_tasks("node-a", claimed), store) == claimed
    assert harness.raw().count_documents({"_id": "gone"}) == 0
    assert harness.run(other.acquire_due_tasks("node-b", at(10), 1.0, 10), other) == []
    assert harness.run(other.get_next_run_time(), other) == at(50)


def test_a_claim_counts_as_its_lease_end_for_every_node(harness: Harness) -> None:
    # The contract's test of this adds its task at 2030 and claims it "now", when it is
    # not due; here the task is due.
    store, other = harness.store(), harness.store()
    now = datetime.now(UTC)
    harness.run(store.add_task(make_task("due", now - timedelta(seconds=1))), store)
    harness.run(store.add_task(make_task("far", now + timedelta(days=1))), store)
    assert len(harness.run(store.acquire_due_tasks("node-a", now, 120.0, 10), store)) == 1
    nxt = harness.run(other.get_next_run_time(), other)
    assert nxt is not None
    assert now + timedelta(seconds=119) <= nxt <= now + timedelta(seconds=121)
    assert harness.run(other.acquire_due_tasks("node-b", now, 120.0, 10), other) == []


def test_stores_claiming_at_once_never_share_a_run(harness: Harness) -> None:
    stores = [harness.store() for _ in range(3)]
    count = 90
    harness.run(
        stores[0].add_tasks([make_task(f"r{i:03d}", at(i % 7)) for i in range(count)]), stores[0]
    )
    taken: dict[str, list[str]] = {}

    async def drain(node: str, store: MongoDBStore) -> None:
        while True:
            batch = await call(store, store.acquire_due_tasks(node, at(100), 30.0, 4))
            if not batch:
                return
            for task in batch:
                taken.setdefault(task.id, []).append(node)
                task.next_run_time = None
            assert await call(store, store.release_tasks(node, batch)) == batch

    async def all_at_once() -> None:
        await asyncio.gather(*(drain(f"node-{n}", s) for n, s in enumerate(stores)))

    asyncio.run_coroutine_threadsafe(all_at_once(), harness.loop).result(timeout=120)
    assert sorted(taken) == [f"r{i:03d}" for i in range(count)]
    assert {task_id: owners for task_id, owners in taken.items() if len(owners) > 1} == {}
    assert harness.raw().count_documents({}) == 0


def test_a_server_without_change_streams_is_polled(harness: Harness) -> None:
    store = harness.store()
    if store.notifications == "change streams":
        pytest.skip("this server has change streams")
    assert store.poll_interval == FALLBACK_POLL
    assert harness.store(poll_interval=0.25).poll_interval == 0.25


@pytest.mark.slow
def test_two_schedulers_run_each_fire_time_exactly_once(mongo_url: str) -> None:
    collection = f"two-{uuid.uuid4().hex[:8]}"
    runs: list[tuple[str, str, datetime]] = []
    lock = threading.Lock()
    schedulers = []
    for name in ("node-a", "node-b"):
        store = MongoDBStore(
            database=DATABASE,
            collection=collection,
            url=mongo_url,
            serverSelectionTimeoutMS=3000,
            poll_interval=0.1,
        )
        scheduler = AsyncIOScheduler(
            stores={"default": store}, identity=name, isolated_event_loop=True
        )

        def record(event: Any, name: str = name) -> None:
            with lock:
                runs.append((name, event.task_id, event.scheduled_run_time))

        scheduler.add_listener(record, ev.TASK_EXECUTED)
        schedulers.append(scheduler)
    step = timedelta(seconds=0.2)
    first: dict[str, datetime] = {}
    try:
        for scheduler in schedulers:
            scheduler.start()
        start = datetime.now(UTC) + timedelta(seconds=0.5)
        end = start + timedelta(seconds=3)
        for i in range(5):
            added = schedulers[i % 2].add_task(
                functions.noop,
                "interval",
                seconds=0.2,
                start_at=start,
                end_at=end,
                id=f"tick{i}",
                misfire_grace_time=30,
                coalesce=False,
            )
            # start, or a later step when the machine was slow to add it
            assert isinstance(added.next_run_time, datetime)
            first[added.id] = added.next_run_time
        expected = {
            task_id: [when + step * k for k in range(16) if when + step * k <= end]
            for task_id, when in first.items()
        }
        # The last fire time's write-back deletes each task (its trigger ended).
        wait_until(lambda: not schedulers[0].get_tasks(), timeout=60, what="the tasks to end")
        deadline = time.monotonic() + 10
        total = sum(map(len, expected.values()))
        while len(runs) < total and time.monotonic() < deadline:  # the last runs finish
            time.sleep(0.05)
    finally:
        for scheduler in schedulers:
            scheduler.shutdown()
    fired = Counter((task_id, when) for _, task_id, when in runs)
    assert {key: n for key, n in fired.items() if n > 1} == {}
    for task_id, times in expected.items():
        # Every fire time from the first to the end (included), none lost.
        assert sorted(when for tid, when in fired if tid == task_id) == times, task_id
        assert len(times) >= 10
    assert {name for name, _, _ in runs} == {"node-a", "node-b"}


def test_a_tampered_payload_is_kept_flagged_reported_and_recovers(harness: Harness) -> None:
    store = harness.store()
    harness.run(store.add_task(make_task("bad", at(1))), store)
    harness.run(store.add_task(make_task("good", at(2))), store)
    good_payload = harness.raw().find_one({"_id": "bad"})["payload"]  # type: ignore[index]
    state = store.serializer.loads(good_payload)
    state["fn"] = MISSING_FUNCTION
    harness.raw().update_one({"_id": "bad"}, {"$set": {"payload": store.serializer.dumps(state)}})

    assert [t.id for t in harness.run(store.get_due_tasks(at(10)), store)] == ["good"]
    doc = harness.raw().find_one({"_id": "bad"})
    assert doc is not None
    assert "asyncz_testing_removed_module" in doc["unrestorable"]
    assert doc["next_run_time"] is None
    assert doc["broken_next_run_time"] == at(1).timestamp()
    assert [e.task_id for e in harness.restore_events] == ["bad"]
    assert set(harness.run(store.get_unrestorable(), store)) == {"bad"}

    # A new store reports it once more (a new process), and never deletes it.
    other = harness.store()
    assert set(harness.run(other.get_unrestorable(), other)) == {"bad"}
    assert [e.task_id for e in harness.restore_events] == ["bad", "bad"]
    assert harness.raw().count_documents({"_id": "bad"}) == 1

    # Once the payload restores again (say the function is back), a store that connects
    # puts the task back in the schedule with its former run time.
    harness.raw().update_one({"_id": "bad"}, {"$set": {"payload": good_payload}})
    healed = harness.store()
    assert harness.run(healed.get_unrestorable(), healed) == {}
    assert harness.run(healed.get_next_run_time(), healed) == at(1)


def test_tasks_survive_a_restart_of_the_server(restartable_server: TemporaryMongoeco) -> None:
    harness = Harness(restartable_server.url)
    try:
        store = harness.store()
        tasks = [make_task("p1", at(1), args=(1,)), make_task("p2", None)]
        harness.run(store.add_tasks(tasks), store)
        harness.run(store.shutdown(), store)
        restartable_server.restart()
        again = harness.store()
        assert [t.id for t in harness.run(again.get_all_tasks(), again)] == ["p1", "p2"]
        assert harness.run(again.get_next_run_time(), again) == at(1)
    finally:
        harness.close()


def test_a_write_back_lost_to_an_outage_keeps_the_claim_until_it_lapses(
    restartable_server: TemporaryMongoeco,
) -> None:
    harness = Harness(restartable_server.url)
    try:
        store = harness.store(serverSelectionTimeoutMS=500)
        harness.run(store.add_task(make_task("w", at(1))), store)
        [task] = harness.run(store.acquire_due_tasks("node-a", at(5), 30.0, 10), store)
        restartable_server.kill()
        task.next_run_time = at(100)
        with pytest.raises(ConnectionFailure):
            harness.run(store.release_tasks("node-a", [task]), store)
        restartable_server.start()
        # Not written back, so its runs were not submitted: the claim holds until its lease
        # ends, then the run at at(1) is due again, for any node.
        assert harness.run(store.acquire_due_tasks("node-b", at(34), 30.0, 10), store) == []
        assert harness.run(store.get_next_run_time(), store) == at(35)
        [again] = harness.run(store.acquire_due_tasks("node-b", at(36), 30.0, 10), store)
        assert again.next_run_time == at(1)
    finally:
        harness.close()


@pytest.mark.slow
def test_the_scheduler_survives_the_server_going_away_mid_run(
    restartable_server: TemporaryMongoeco,
) -> None:
    key = f"outage-{uuid.uuid4().hex[:8]}"
    functions.reset(key)
    store = MongoDBStore(
        database=DATABASE,
        collection=key,
        url=restartable_server.url,
        serverSelectionTimeoutMS=500,
    )
    scheduler = AsyncIOScheduler(stores={"default": store}, isolated_event_loop=True)
    scheduler.start()
    try:
        scheduler.add_task(functions.record, "interval", seconds=0.1, args=(key,), id="tick")
        wait_until(lambda: functions.calls(key) >= 3, what="runs before the outage")
        restartable_server.kill()
        time.sleep(1.5)  # a few failing passes, with backoff
        restartable_server.start()  # same port, same data
        before = functions.calls(key)
        wait_until(lambda: functions.calls(key) >= before + 3, timeout=30, what="runs after")
        task = scheduler.get_task("tick")
        assert task is not None
        assert isinstance(task.next_run_time, datetime)
    finally:
        scheduler.shutdown()
