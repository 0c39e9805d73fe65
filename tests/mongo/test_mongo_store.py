"""MongoDBStore beyond the contract: construction, plugin wiring, the index, leases shared by
two stores, unrestorable documents, restarts of the server (graceful and killed)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import pymongo
import pytest
from pymongo.errors import ConnectionFailure

from asyncz import events as ev
from asyncz.exceptions import ConfigurationError, ConflictingIdError
from asyncz.registry import create
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores.base import BaseStore, LoopThread, call
from asyncz.testing import MISSING_FUNCTION, assert_same_task, functions, make_task, wait_until
from asyncz_mongo import MongoDBStore
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
    with pytest.raises(ValueError, match="claim_timeout"):
        MongoDBStore(claim_timeout=0)


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

    def raw_leases(self) -> pymongo.collection.Collection[dict[str, Any]]:
        return self.raw().database[f"{self.collection}.leases"]

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


def test_the_next_run_time_index_is_created(harness: Harness) -> None:
    store = harness.store()
    harness.run(store.add_task(make_task("i", at(1))), store)
    indexes = harness.raw().index_information()
    assert any(spec["key"] == [("next_run_time", 1)] for spec in indexes.values()), indexes
    # A second store on the same collection accepts the existing index.
    second = harness.store()
    assert harness.run(second.lookup_task("i"), second) is not None


def test_the_document_layout(harness: Harness) -> None:
    store = harness.store()
    harness.run(store.add_task(make_task("doc", at(1))), store)
    harness.run(store.add_task(make_task("paused", None)), store)
    doc = harness.raw().find_one({"_id": "doc"})
    assert doc is not None
    assert doc["next_run_time"] == at(1).timestamp()
    assert isinstance(doc["payload"], bytes)
    assert set(doc) == {"_id", "next_run_time", "payload"}  # claims live in the registry
    paused = harness.raw().find_one({"_id": "paused"})
    assert paused is not None
    assert paused["next_run_time"] is None


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
    assert list(raw_sync) == list(raw_async) == ["_id", "next_run_time", "payload"]
    assert raw_sync["next_run_time"] == at(2).timestamp()
    assert raw_sync["payload"] == store.encode_task(task)
    # And it is claimed and run like any other.
    due = harness.run(store.get_due_tasks(at(5)), store)
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


def test_two_stores_never_take_the_same_due_run(harness: Harness) -> None:
    first, second = harness.store(), harness.store()
    harness.run(first.add_tasks([make_task(f"c{i}", at(i)) for i in range(10)]), first)
    taken = harness.run(first.get_due_tasks(at(100), 4), first)
    assert [t.id for t in taken] == ["c0", "c1", "c2", "c3"]
    # The other store gets the rest, never the claimed ones.
    rest = harness.run(second.get_due_tasks(at(100)), second)
    assert [t.id for t in rest] == [f"c{i}" for i in range(4, 10)]
    # Each store may take back what it holds itself (a retried pass), never the other's.
    again = harness.run(second.get_due_tasks(at(100)), second)
    assert [t.id for t in again] == [t.id for t in rest]
    # It does not spin on runs another store holds: it wakes when their lease lapses.
    harness.run(second.delete_tasks([t.id for t in rest]), second)
    wake = harness.run(second.get_next_run_time(), second)
    assert wake is not None
    assert wake > datetime.now(UTC) + timedelta(seconds=30)
    # The holder writes them back; a late write-back of a lost lease is not applied.
    for task in taken:
        task.next_run_time = at(1000)
    harness.run(second.update_tasks(taken[:1]), second)  # second does not hold c0
    harness.run(first.update_tasks(taken), first)
    assert harness.run(second.get_next_run_time(), second) == at(1000)
    # Written back, the claims are released: the lease registry holds nothing.
    registry = harness.raw_leases().find_one({"_id": "leases"})
    assert registry is not None
    assert registry["holders"] == {}


def test_a_lapsed_lease_lets_another_store_take_the_run(harness: Harness) -> None:
    crashed, survivor = harness.store(claim_timeout=0.3), harness.store()
    harness.run(crashed.add_task(make_task("lapse", at(1))), crashed)
    assert len(harness.run(crashed.get_due_tasks(at(5)), crashed)) == 1
    assert harness.run(survivor.get_due_tasks(at(5)), survivor) == []
    time.sleep(0.4)
    assert [t.id for t in harness.run(survivor.get_due_tasks(at(5)), survivor)] == ["lapse"]
    # The crashed store's write-back comes too late and changes nothing.
    late = make_task("lapse", at(50))
    harness.run(crashed.update_tasks([late]), crashed)
    doc = harness.raw().find_one({"_id": "lapse"})
    assert doc is not None
    assert doc["next_run_time"] == at(1).timestamp()


def test_a_lapsed_lease_nobody_took_is_renewed_and_written_back(harness: Harness) -> None:
    store, other = harness.store(claim_timeout=0.3), harness.store()
    harness.run(store.add_tasks([make_task("slow", at(1)), make_task("gone", at(2))]), store)
    assert len(harness.run(store.get_due_tasks(at(5)), store)) == 2
    time.sleep(0.4)  # lapsed, but no other store claimed anything meanwhile
    harness.run(store.update_tasks([make_task("slow", at(50))]), store)
    harness.run(store.delete_tasks(["gone"]), store)
    assert harness.raw().find_one({"_id": "slow"})["next_run_time"] == at(50).timestamp()  # type: ignore[index]
    assert harness.raw().count_documents({"_id": "gone"}) == 0
    assert harness.run(other.get_due_tasks(at(5)), other) == []
    assert harness.run(other.get_next_run_time(), other) == at(50)


def test_stores_claiming_at_once_never_share_a_run(harness: Harness) -> None:
    stores = [harness.store() for _ in range(3)]
    count = 90
    harness.run(
        stores[0].add_tasks([make_task(f"r{i:03d}", at(i % 7)) for i in range(count)]), stores[0]
    )
    taken: dict[str, list[str]] = {}

    async def drain(store: MongoDBStore) -> None:
        while True:
            batch = await call(store, store.get_due_tasks(at(100), 4))
            if not batch:
                return
            for task in batch:
                taken.setdefault(task.id, []).append(store._owner)
            await call(store, store.delete_tasks([t.id for t in batch]))

    async def all_at_once() -> None:
        await asyncio.gather(*(drain(store) for store in stores))

    asyncio.run_coroutine_threadsafe(all_at_once(), harness.loop).result(timeout=120)
    assert sorted(taken) == [f"r{i:03d}" for i in range(count)]
    assert {task_id: owners for task_id, owners in taken.items() if len(owners) > 1} == {}
    assert harness.raw().count_documents({}) == 0


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


def test_a_write_back_lost_to_an_outage_is_retried_not_rerun(
    restartable_server: TemporaryMongoeco,
) -> None:
    harness = Harness(restartable_server.url)
    try:
        store = harness.store(serverSelectionTimeoutMS=500)
        harness.run(store.add_task(make_task("w", at(1))), store)
        [task] = harness.run(store.get_due_tasks(at(5)), store)
        restartable_server.kill()
        task.next_run_time = at(100)
        with pytest.raises(ConnectionFailure):
            harness.run(store.update_tasks([task]), store)
        restartable_server.start()
        # The run at at(1) was made: it is not due again once the server is back.
        assert harness.run(store.get_due_tasks(at(5)), store) == []
        assert harness.run(store.get_next_run_time(), store) == at(100)
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
