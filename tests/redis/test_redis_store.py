"""RedisStore specifics against a real redis-server: imports, configuration, round trips,
a tampered payload, and a server restart in the middle of a run."""

from __future__ import annotations

import importlib
import logging
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.serializers import PickleSerializer
from asyncz.stores.base import call_sync
from asyncz.tasks import ScheduleState
from asyncz.testing import functions, make_task, wait_until
from asyncz_redis import RedisStore
from conftest import RedisServer

pytestmark = pytest.mark.redis
UTC = timezone.utc


def keys() -> dict[str, str]:
    ns = f"t-{uuid.uuid4().hex[:10]}"
    return {"tasks_key": f"{ns}.tasks", "run_times_key": f"{ns}.run_times"}


def test_imports_from_the_core_shims() -> None:
    from asyncz.stores import RedisStore as FromStores
    from asyncz.stores.redis import RedisStore as FromShim

    assert FromShim is RedisStore
    assert FromStores is RedisStore


def test_the_shim_says_what_to_install_when_the_plugin_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "asyncz_redis", None)
    shim = importlib.import_module("asyncz.stores.redis")
    with pytest.raises(ImportError, match="pip install asyncz-redis"):
        shim.RedisStore  # noqa: B018


def test_constructing_does_not_connect() -> None:
    store = RedisStore(database=0, port=1)  # nothing listens on port 1
    assert store.database == 0
    assert store._client is None
    assert store.io_loop is None  # the scheduler gives it one when it starts


def test_starting_against_no_server_is_a_connection_error() -> None:
    import redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    store = RedisStore(port=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis.ConnectionError):
        call_sync(store, store.start(AsyncIOScheduler(), "default"))
    call_sync(store, store.shutdown())


def test_configuration_alone(redis_server: RedisServer) -> None:
    names = keys()
    scheduler = AsyncIOScheduler(
        global_config={
            "asyncz.stores.default": {
                "type": "redis",
                "database": "0",
                "host": "127.0.0.1",
                "port": str(redis_server.port),
                **names,
            }
        }
    )
    store = scheduler.stores["default"]
    assert isinstance(store, RedisStore)
    assert (store.database, store.port, store.tasks_key) == (
        0,
        redis_server.port,
        names["tasks_key"],
    )
    key = f"cfg-{uuid.uuid4().hex}"
    scheduler.start()
    try:
        scheduler.add_task(functions.record, args=(key,), id="now")
        wait_until(lambda: functions.calls(key) == 1, what="the task ran")
    finally:
        scheduler.shutdown()


def test_url_and_given_client(redis_server: RedisServer) -> None:
    from redis.asyncio import Redis

    for store in (
        RedisStore(url=redis_server.url, **keys()),
        RedisStore(client=Redis(port=redis_server.port), **keys()),
    ):
        call_sync(store, store.start(AsyncIOScheduler(), "default"))
        try:
            call_sync(store, store.add_task(make_task("x", datetime(2030, 1, 1, tzinfo=UTC))))
            assert call_sync(store, store.lookup_task("x")) is not None
        finally:
            call_sync(store, store.remove_all_tasks())
            call_sync(store, store.shutdown())


def test_bulk_operations_are_single_round_trips(redis_server: RedisServer) -> None:
    store = RedisStore(host="127.0.0.1", port=redis_server.port, **keys())
    call_sync(store, store.start(AsyncIOScheduler(), "default"))
    at = datetime(2030, 1, 1, tzinfo=UTC)
    tasks = [make_task(f"b{i}", at + timedelta(seconds=i)) for i in range(2000)]

    def calls(*names: str) -> int:
        with redis_server.client() as client:
            stats = client.info("commandstats")
        return sum(stats.get(f"cmdstat_{n}", {}).get("calls", 0) for n in names)

    def scripts_run() -> int:
        return calls("evalsha", "eval")

    try:
        before = scripts_run()
        call_sync(store, store.add_tasks(tasks))
        assert scripts_run() - before == 1
        due = call_sync(store, store.get_due_tasks(at + timedelta(hours=1), 500))
        assert len(due) == 500
        assert scripts_run() - before == 2
        call_sync(store, store.update_tasks([make_task(t.id, at + timedelta(days=1)) for t in due]))
        assert scripts_run() - before == 3
        transactions = calls("exec")
        call_sync(store, store.delete_tasks([t.id for t in due]))
        assert calls("exec") - transactions == 1  # one MULTI/HDEL.../ZREM/EXEC transaction
        assert scripts_run() - before == 3
    finally:
        call_sync(store, store.remove_all_tasks())
        call_sync(store, store.shutdown())


def test_tampered_pickle_payload_is_refused_kept_and_never_unpickled(
    redis_server: RedisServer,
) -> None:
    import pickle

    class_name = "asyncz.testing.functions"
    functions.reset("tampered!")
    names = keys()
    serializer = PickleSerializer(secret_key="redis-test-key")
    store = RedisStore(host="127.0.0.1", port=redis_server.port, serializer=serializer, **names)
    call_sync(store, store.start(AsyncIOScheduler(), "default"))
    try:
        when = datetime(2030, 1, 1, tzinfo=UTC)
        call_sync(store, store.add_task(make_task("victim", when)))
        call_sync(store, store.add_task(make_task("bystander", when + timedelta(seconds=1))))
        with redis_server.client() as client:
            signed = client.hget(names["tasks_key"], "victim")
            assert isinstance(signed, bytes)
            # Keep the signature, swap the body for one that would run code when unpickled.
            body = pickle.dumps({"args": (Exploit(),)})
            tampered = signed[: 5 + 32] + body
            client.hset(names["tasks_key"], "victim", tampered)
        due = call_sync(store, store.get_due_tasks(when + timedelta(seconds=5)))
        assert [t.id for t in due] == ["bystander"]
        broken = call_sync(store, store.get_unrestorable())
        assert "bad signature" in broken["victim"]
        with redis_server.client() as client:
            assert client.hget(names["tasks_key"], "victim") == tampered  # kept as it was
            assert client.zscore(names["run_times_key"], "victim") is not None
        assert functions.calls("tampered!") == 0, f"{class_name}.record ran: it was unpickled"
    finally:
        call_sync(store, store.remove_all_tasks())
        call_sync(store, store.shutdown())


class Exploit:
    def __reduce__(self) -> tuple[object, ...]:
        return (functions.record, ("tampered!",))


def test_server_restart_mid_run_loses_nothing(
    own_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = own_redis_server
    ticks = f"restart-{uuid.uuid4().hex}"
    later = f"later-{uuid.uuid4().hex}"
    functions.reset(ticks)
    functions.reset(later)
    store = RedisStore(host="127.0.0.1", port=server.port, socket_connect_timeout=1)
    scheduler = AsyncIOScheduler(stores={"default": store}, isolated_event_loop=True)
    caplog.set_level(logging.WARNING, logger="asyncz")
    scheduler.start()
    try:
        scheduler.add_task(functions.record, "interval", seconds=0.1, args=(ticks,), id="tick")
        start = datetime.now(UTC)
        for i in range(5):  # due while the server is down or just after it is back
            scheduler.add_task(
                functions.record,
                "date",
                run_at=start + timedelta(seconds=0.6 + i * 0.1),
                args=(later,),
                id=f"later{i}",
                misfire_grace_time=None,
            )  # run however late: the outage must delay them, not drop them
        scheduler.add_task(functions.noop, "cron", hour=4, id="nightly")
        nightly = scheduler.get_task("nightly")
        assert nightly is not None
        wait_until(lambda: functions.calls(ticks) >= 2, what="ticks before the restart")
        server.restart(downtime=1.5)
        after_restart = functions.calls(ticks)
        wait_until(
            lambda: functions.calls(ticks) >= after_restart + 3, timeout=20, what="ticks resume"
        )
        wait_until(lambda: functions.calls(later) == 5, timeout=20, what="every date task ran once")
        tasks = {t.id: t for t in scheduler.get_tasks()}
        assert set(tasks) == {"tick", "nightly"}
        assert tasks["nightly"].next_run_time == nightly.next_run_time
        assert scheduler.get_task_infos(schedule_state=ScheduleState.UNRESTORABLE) == []
    finally:
        scheduler.remove_all_tasks()
        scheduler.shutdown()
    failures = [r for r in caplog.records if "Processing tasks failed" in r.getMessage()]
    recoveries = [r for r in caplog.records if "Processing recovered" in r.getMessage()]
    assert len(failures) == 1, "an outage is logged once"
    assert len(recoveries) == 1
    beats = [r.getMessage() for r in caplog.records if "Heartbeat of node" in r.getMessage()]
    for outcome in ("failed", "recovered"):  # logged once each, if the outage hit a heartbeat
        assert sum(outcome in m for m in beats) <= 1, beats


def test_scheduler_adds_many_pending_tasks_in_one_round_trip(redis_server: RedisServer) -> None:
    store = RedisStore(host="127.0.0.1", port=redis_server.port, **keys())
    scheduler = AsyncIOScheduler(stores={"default": store}, isolated_event_loop=True)
    for i in range(1000):
        scheduler.add_task(functions.noop, "interval", hours=1, id=f"p{i}")
    with redis_server.client() as client:
        before = client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
    scheduler.start(paused=True)
    try:
        with redis_server.client() as client:
            after = client.info("commandstats")["cmdstat_evalsha"]["calls"]
        assert after - before <= 3
        assert len(scheduler.get_tasks()) == 1000
    finally:
        scheduler.remove_all_tasks()
        scheduler.shutdown()
    time.sleep(0)


def test_add_task_on_a_running_scheduler_writes_from_the_calling_thread(
    redis_server: RedisServer,
) -> None:
    """A synchronous add_task writes once, from the caller's thread on a connection of its
    own: the store's I/O loop is not involved, and the task reads back like any other."""
    import threading

    from asyncz.exceptions import ConflictingIdError

    store = RedisStore(url=redis_server.url, **keys())
    scheduler = AsyncIOScheduler(
        stores={"default": store},
        isolated_event_loop=True,
        global_config={"asyncz.coordination.heartbeat_interval": "9"},  # none while measuring
    )
    scheduler.start(paused=True)
    try:
        io_thread = next(t for t in threading.enumerate() if t.name.startswith("asyncz-io"))
        with redis_server.client() as client:
            # The node's first heartbeat (an HSET of its record) is written before counting.
            wait_until(lambda: client.hexists(store.nodes_key, scheduler.identity), what="beat")
            before = client.info("commandstats").get("cmdstat_hset", {}).get("calls", 0)
        seen: list[tuple[str, bool]] = []
        original = store.add_task_sync

        def spy(task: Any) -> bool:
            written = original(task)
            seen.append((threading.current_thread().name, written))
            return written

        store.add_task_sync = spy  # type: ignore[method-assign]
        task = scheduler.add_task(functions.noop, "interval", hours=1, id="sync-1")
        assert seen == [(threading.current_thread().name, True)]
        assert io_thread.name != threading.current_thread().name
        with redis_server.client() as client:
            assert client.hexists(store.tasks_key, "sync-1")
            assert client.zscore(store.run_times_key, "sync-1") == pytest.approx(
                task.next_run_time.timestamp()
            )
            after = client.info("commandstats")["cmdstat_hset"]["calls"]
        assert after - before == 1  # one write, by the script of the calling thread
        assert scheduler.get_task("sync-1").snapshot().trigger_alias == "interval"
        with pytest.raises(ConflictingIdError, match="sync-1"):
            scheduler.add_task(functions.noop, "interval", hours=1, id="sync-1")
        assert len(scheduler.get_tasks()) == 1
    finally:
        scheduler.remove_all_tasks()
        scheduler.shutdown()


def test_a_given_asyncio_client_keeps_every_call_on_the_io_loop(redis_server: RedisServer) -> None:
    from redis.asyncio import Redis

    store = RedisStore(client=Redis(port=redis_server.port), **keys())
    scheduler = AsyncIOScheduler(stores={"default": store}, isolated_event_loop=True)
    scheduler.start(paused=True)
    try:
        task = scheduler.add_task(functions.noop, "interval", hours=1, id="given")
        assert store.add_task_sync(task) is False
        assert scheduler.get_task("given") is not None
    finally:
        scheduler.remove_all_tasks()
        scheduler.shutdown()
