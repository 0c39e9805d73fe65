"""Faults around a Redis store, against real redis-server processes: a second worker adding
the same pending id, a start that fails, a server that cannot be reached, a frozen server
(SIGSTOP), runs dropped during an outage, and a server that restarted empty."""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

import pytest

from asyncz import events as ev
from asyncz.exceptions import StoreUnavailableError
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.testing import functions, wait_until
from asyncz_redis import RedisStore
from conftest import RedisServer, free_port

pytestmark = pytest.mark.redis


def keys() -> dict[str, str]:
    ns = f"t-{uuid.uuid4().hex[:10]}"
    return {"tasks_key": f"{ns}.tasks", "run_times_key": f"{ns}.run_times"}


def thread_names() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.is_alive())


# -- a second worker of the same application --------------------------------------------------
def test_a_second_worker_keeps_the_stored_task_and_starts(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    shared = keys()

    def worker(hour: int, **options: Any) -> AsyncIOScheduler:
        scheduler = AsyncIOScheduler(
            stores={"default": RedisStore(url=redis_server.url, **shared)},
            isolated_event_loop=True,
        )
        scheduler.add_task(functions.noop, "cron", hour=hour, id="nightly", **options)
        scheduler.add_task(functions.noop, "interval", hours=hour, id=f"own-{hour}")
        return scheduler

    first = worker(1)
    first.start(paused=True)
    second = worker(2)
    third = worker(3, replace_existing=True)
    try:
        caplog.set_level(logging.INFO, logger="asyncz")
        assert second.start(paused=True) is True  # no ConflictingIdError
        kept = [r for r in caplog.records if "nightly" in r.getMessage() and "kept" in r.getMessage()]
        assert len(kept) == 1, [r.getMessage() for r in caplog.records]
        stored = first.get_task("nightly")
        assert stored is not None
        assert "hour='1'" in str(stored.trigger)  # the first worker's task was kept
        assert second.get_task("own-2") is not None  # the second worker's other task is in

        third.start(paused=True)
        stored = first.get_task("nightly")
        assert stored is not None
        assert "hour='3'" in str(stored.trigger)  # replace_existing=True replaced it
    finally:
        first.remove_all_tasks()
        for scheduler in (first, second, third):
            if scheduler.running:
                scheduler.shutdown()


def test_a_failing_start_closes_every_thread_and_connection(redis_server: RedisServer) -> None:
    good = RedisStore(url=redis_server.url, **keys())
    dead_port = free_port()
    bad = RedisStore(host="127.0.0.1", port=dead_port, socket_connect_timeout=2, **keys())
    scheduler = AsyncIOScheduler(
        stores={"default": good, "other": bad}, executors={"pool": {"type": "threadpool"}}
    )
    scheduler.add_task(functions.noop, "interval", hours=1, id="pending")
    before = thread_names()
    with redis_server.client() as client:
        clients_before = len(client.client_list())
    with pytest.raises(StoreUnavailableError):
        scheduler.start()
    assert not scheduler.running
    assert thread_names() == before
    assert good._client is None  # the store that did start was shut down again
    with redis_server.client() as client:
        wait_until(lambda: len(client.client_list()) == clients_before, what="connection closed")
    # Nothing was lost: the pending task is committed by a later, successful start.
    scheduler.remove_store("other")
    scheduler.start(paused=True)
    try:
        assert scheduler.get_task("pending") is not None
    finally:
        scheduler.remove_all_tasks()
        scheduler.shutdown()
    assert thread_names() == before


# -- a store that cannot be reached at start ----------------------------------------------------
def test_an_unreachable_redis_at_start_is_one_line_naming_store_address_and_setting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()  # nothing listens there
    scheduler = AsyncIOScheduler(
        global_config={"asyncz.stores.default": {"type": "redis", "url": f"redis://127.0.0.1:{port}/0"}}
    )
    before = thread_names()
    with pytest.raises(StoreUnavailableError) as info:
        scheduler.start()
    message = str(info.value)
    assert "\n" not in message
    assert "'default'" in message
    assert "redis" in message
    assert f"127.0.0.1:{port}" in message
    assert "asyncz.stores.default.url" in message
    assert isinstance(info.value, ConnectionError)
    assert info.value.__cause__ is not None  # the driver's error, chained
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is None  # one line, no traceback
    assert thread_names() == before
