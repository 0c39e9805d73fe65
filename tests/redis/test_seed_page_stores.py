"""The examples of the Asyncz *Schedulers* page that use Redis and MongoDB stores, run as
written against real servers.

The page's stores take their default addresses (``RedisStore(database=0)``,
``MongoDBStore()``, ``{"type": "mongodb"}``). So that the examples run unchanged against the
servers this test session starts on its own ports, the store classes they import are replaced,
for the duration of each test, by subclasses whose defaults are those addresses.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pymongo
import pytest

import asyncz.stores
import asyncz_mongo
import asyncz_redis
from asyncz.registry import registry
from asyncz_mongo.testing import MongoUnavailable, TemporaryMongoeco
from conftest import RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.mongo]

ROOT = Path(__file__).resolve().parents[2]
ran: list[str] = []


def page_job() -> None:
    ran.append("job")


def _mongo_unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"A MongoDB wire-protocol server is required under CI=true: {reason}")
    pytest.skip(f"no MongoDB wire-protocol server: {reason} (run scripts/setup-mongoeco)")


@pytest.fixture(scope="module")
def mongo_url() -> Iterator[str]:
    given = os.environ.get("ASYNCZ_TEST_MONGO_URL")
    if given:
        yield given
        return
    done = subprocess.run(
        [str(ROOT / "scripts" / "setup-mongoeco")], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        _mongo_unavailable(done.stderr.strip()[-1000:])
    server = TemporaryMongoeco(done.stdout.strip().splitlines()[-1])
    try:
        server.start()
    except MongoUnavailable as exc:
        server.close()
        _mongo_unavailable(str(exc))
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture
def page_stores(
    own_redis_server: RedisServer, mongo_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """Point the page's default store addresses at this session's servers."""
    database_name = f"page_{time.monotonic_ns()}"

    class PageRedisStore(asyncz_redis.RedisStore):
        def __init__(self, database: int | None = None, **options: Any) -> None:
            options.setdefault("host", "127.0.0.1")
            options.setdefault("port", own_redis_server.port)
            super().__init__(database, **options)

    class PageMongoDBStore(asyncz_mongo.MongoDBStore):
        def __init__(self, database: str = database_name, **options: Any) -> None:
            options.setdefault("url", mongo_url)
            super().__init__(database, **options)

    # `from asyncz.stores import RedisStore` caches what it imported: replace that too,
    # first (so that what is restored afterwards is the real class).
    monkeypatch.setattr(asyncz.stores, "RedisStore", PageRedisStore)
    monkeypatch.setattr(asyncz.stores, "MongoDBStore", PageMongoDBStore)
    monkeypatch.setattr(asyncz_redis, "RedisStore", PageRedisStore)
    monkeypatch.setattr(asyncz_mongo, "MongoDBStore", PageMongoDBStore)
    registry.register("store", "redis", PageRedisStore, replace=True)
    registry.register("store", "mongodb", PageMongoDBStore, replace=True)
    ran.clear()
    try:
        yield {"redis": own_redis_server, "mongo": mongo_url, "database": database_name}
    finally:
        registry.deregister("store", "redis")
        registry.deregister("store", "mongodb")


def run_a_task_in_each_store(scheduler: Any, stores: dict[str, Any], delay: float = 0.2) -> None:
    """A task in the Redis store and one in the Mongo store really run, from the servers."""
    when = datetime.now(timezone.utc) + timedelta(seconds=delay)
    scheduler.add_task(page_job, "date", run_at=when, id="in-redis")
    scheduler.add_task(page_job, "date", run_at=when, id="in-mongo", store="mongo")
    with stores["redis"].client() as client:
        assert client.hexists("asyncz.tasks", "in-redis")
    with pymongo.MongoClient(stores["mongo"]) as client:
        assert client[stores["database"]]["tasks"].count_documents({"_id": "in-mongo"}) == 1
    deadline = time.monotonic() + 15
    while len(ran) < 2:
        assert time.monotonic() < deadline, f"runs so far: {ran}"
        time.sleep(0.02)


def test_python_first_configuration(page_stores: dict[str, Any]) -> None:
    from datetime import timezone as tz

    from asyncz.executors import AsyncIOExecutor, ThreadPoolExecutor
    from asyncz.schedulers.asyncio import AsyncIOScheduler
    from asyncz.stores.mongo import MongoDBStore
    from asyncz.stores.redis import RedisStore

    # Define the stores
    # Override the default MemoryStore to become RedisStore where the db is 0
    stores = {"mongo": MongoDBStore(), "default": RedisStore(database=0)}
    # Define the executors
    # Override the default ot be the AsyncIOExecutor
    executors = {
        "default": AsyncIOExecutor(),
        "threadpool": ThreadPoolExecutor(max_workers=20),
    }
    # Set the defaults
    task_defaults = {"coalesce": False, "max_instances": 4}
    # Create the scheduler
    scheduler = AsyncIOScheduler(
        stores=stores, executors=executors, task_defaults=task_defaults, timezone=tz.utc
    )
    # Start the scheduler
    with scheduler:
        # note: you can also use start() and shutdown() manually
        # Nesting is also not a problem (start and shutdown are refcounted and only the
        # outermost scope does start and shutdown the scheduler)
        scheduler.start()
        scheduler.stop()
        # manually you have more control like:
        scheduler.start(paused=True)
        scheduler.resume()
        # noop because not outermost scope
        with scheduler:
            ...
        scheduler.shutdown(wait=False)
        assert scheduler.running
        run_a_task_in_each_store(scheduler, page_stores)
    assert not scheduler.running
    assert scheduler.task_defaults["coalesce"] is False
    assert scheduler.task_defaults["max_instances"] == 4


def test_configuration_dictionary_at_construction(page_stores: dict[str, Any]) -> None:
    from asyncz.schedulers.asyncio import AsyncIOScheduler

    # Create the scheduler
    scheduler = AsyncIOScheduler(
        global_config={
            "asyncz.stores.mongo": {"type": "mongodb"},
            "asyncz.stores.default": {"type": "redis", "database": "0"},
            "asyncz.executors.pool": {
                "max_workers": "20",
                "class": "asyncz.executors.pool:ThreadPoolExecutor",
            },
            "asyncz.executors.default": {"class": "asyncz.executors.asyncio:AsyncIOExecutor"},
            "asyncz.task_defaults.coalesce": "false",
            "asyncz.task_defaults.max_instances": "3",
            "asyncz.task_defaults.timezone": "UTC",
        },
    )
    # Start the scheduler
    with scheduler:
        assert type(scheduler.stores["default"]).__mro__[1].__name__ == "RedisStore"
        assert scheduler.stores["default"].database == 0
        assert scheduler.executors["pool"].max_workers == 20
        defaults = scheduler.task_defaults
        assert (defaults["coalesce"], defaults["max_instances"]) == (False, 3)
        assert defaults["misfire_grace_time"] == 1.0
        # The run policies (issue 17) keep their defaults.
        assert (defaults["retries"], defaults["overlap"], defaults["timeout"]) == (0, "skip", None)
        run_a_task_in_each_store(scheduler, page_stores)


def test_reconfiguring_with_setup(page_stores: dict[str, Any]) -> None:
    from datetime import timezone as tz

    from asyncz.executors import AsyncIOExecutor, ThreadPoolExecutor
    from asyncz.schedulers.asyncio import AsyncIOScheduler
    from asyncz.stores import MongoDBStore, RedisStore

    stores = {"mongo": MongoDBStore(), "default": RedisStore(database=0)}
    executors = {
        "default": AsyncIOExecutor(),
        "threadpool": ThreadPoolExecutor(max_workers=20),
    }
    task_defaults = {"coalesce": False, "max_instances": 4}
    scheduler = AsyncIOScheduler()
    ## Add some tasks here or anything else (for instance 3 tasks)
    for i in range(3):
        scheduler.add_task(page_job, "interval", minutes=10, id=f"pending-{i}")
    scheduler.setup(
        stores=stores, executors=executors, task_defaults=task_defaults, timezone=tz.utc
    )
    # Start the scheduler
    with scheduler:
        # the three tasks added before setup() were committed to the Redis store
        with page_stores["redis"].client() as client:
            assert sorted(k.decode() for k in client.hkeys("asyncz.tasks")) == [
                "pending-0",
                "pending-1",
                "pending-2",
            ]
        assert scheduler.timezone is tz.utc
        run_a_task_in_each_store(scheduler, page_stores)


def test_multi_process_locking_example(page_stores: dict[str, Any], tmp_path: Path) -> None:
    from asyncz.schedulers.asyncio import AsyncIOScheduler

    lock_path = str(tmp_path / "asynzc_super_project_{store}_store.pid")
    # Create the scheduler
    scheduler = AsyncIOScheduler(
        global_config={
            "asyncz.lock_path": lock_path,
            "asyncz.startup_delay": 2,
            "asyncz.stores.mongo": {"type": "mongodb"},
            "asyncz.stores.default": {"type": "redis", "database": "0"},
            "asyncz.executors.pool": {
                "max_workers": "20",
                "class": "asyncz.executors.pool:ThreadPoolExecutor",
            },
            "asyncz.executors.default": {"class": "asyncz.executors.asyncio:AsyncIOExecutor"},
            "asyncz.task_defaults.coalesce": "false",
            "asyncz.task_defaults.max_instances": "3",
            "asyncz.task_defaults.timezone": "UTC",
        },
    )
    assert scheduler.startup_delay == 2
    started = time.monotonic()
    # Start the scheduler
    with scheduler:
        # due after the 2 s startup delay (a run due during it would be reported missed)
        run_a_task_in_each_store(scheduler, page_stores, delay=2.5)
        # nothing runs before the startup delay
        assert time.monotonic() - started >= 2
        # a lock file per store, named from the template
        assert (tmp_path / "asynzc_super_project_default_store.pid").exists()
        assert (tmp_path / "asynzc_super_project_mongo_store.pid").exists()
