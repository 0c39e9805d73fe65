"""Faults around a Redis store, against real redis-server processes: a second worker adding
the same pending id, a start that fails, a server that cannot be reached, a frozen server
(SIGSTOP), runs dropped during an outage, and a server that restarted empty."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis

from asyncz import events as ev
from asyncz.exceptions import StoreUnavailableError
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.testing import functions, wait_until
from asyncz_redis import RedisStore
from conftest import RedisServer, free_port, redis_binary

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
        kept = [
            r for r in caplog.records if "nightly" in r.getMessage() and "kept" in r.getMessage()
        ]
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
        global_config={
            "asyncz.stores.default": {"type": "redis", "url": f"redis://127.0.0.1:{port}/0"}
        }
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
    assert not [r for r in caplog.records if r.exc_info], "no traceback is logged"
    assert thread_names() == before


# -- a frozen server (SIGSTOP: connections accepted, nothing answered) -------------------------
class Frozen:
    """SIGSTOP the server on entry, SIGCONT on exit (whatever happens)."""

    def __init__(self, server: RedisServer) -> None:
        assert server.process is not None
        self.pid = server.process.pid

    def __enter__(self) -> Frozen:
        os.kill(self.pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc_info: object) -> None:
        os.kill(self.pid, signal.SIGCONT)


def outage_scheduler(server: RedisServer) -> tuple[AsyncIOScheduler, list[ev.SchedulerEvent]]:
    scheduler = AsyncIOScheduler(
        stores={"default": RedisStore(url=server.url, **keys())},
        store_timeout=1,
        isolated_event_loop=True,
    )
    events: list[ev.SchedulerEvent] = []
    scheduler.add_listener(events.append, ev.TASK_MISSED | ev.TASK_RUNS_DROPPED | ev.TASK_EXECUTED)
    return scheduler, events


def test_a_run_due_while_the_store_is_frozen_is_missed_not_run_late(
    own_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    key = f"frozen-{uuid.uuid4().hex[:8]}"
    functions.reset(key)
    scheduler, events = outage_scheduler(own_redis_server)
    caplog.set_level(logging.INFO, logger="asyncz")
    scheduler.start()
    try:
        due = datetime.now(timezone.utc) + timedelta(seconds=1.5)
        scheduler.add_task(
            functions.record, "date", run_at=due, args=(key,), id="once", misfire_grace_time=1
        )
        time.sleep(1.0)  # the scheduler sleeps until `due`, then asks the frozen store
        # Frozen for less than redis-py's own socket timeout (5 s): only asyncz's
        # store_timeout (1 s here) notices, and the run must be judged late on return.
        with Frozen(own_redis_server):
            time.sleep(3.5)
        wait_until(lambda: any(e.code == ev.TASK_MISSED for e in events), timeout=30, what="missed")
        assert functions.calls(key) == 0, "the run was executed late, past its grace time"
        wait_until(lambda: scheduler.get_task("once") is None, what="the finished task removed")
    finally:
        scheduler.shutdown()
    failed = [r for r in caplog.records if "Processing tasks failed" in r.getMessage()]
    assert len(failed) == 1, "an outage is logged once"
    assert "no answer to" in failed[0].getMessage()
    assert "asyncz.store_timeout" in failed[0].getMessage()
    assert failed[0].exc_info is None
    assert sum("Processing recovered" in r.getMessage() for r in caplog.records) == 1
    beats = [r.getMessage() for r in caplog.records if "Heartbeat of node" in r.getMessage()]
    for outcome in ("failed", "recovered"):  # logged once each, if the outage hit a heartbeat
        assert sum(outcome in m for m in beats) <= 1, beats
    dropped = [e for e in events if isinstance(e, ev.TaskRunsDroppedEvent)]
    assert [(e.task_id, e.missed, e.folded) for e in dropped] == [("once", 1, 0)]


def test_runs_dropped_during_an_outage_are_reported_once_per_task_with_the_count(
    own_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler, events = outage_scheduler(own_redis_server)
    caplog.set_level(logging.INFO, logger="asyncz")
    scheduler.start()
    try:
        common = {"seconds": 0.2, "misfire_grace_time": 0.5}
        scheduler.add_task(functions.noop, "interval", id="strict", coalesce=False, **common)
        scheduler.add_task(functions.noop, "interval", id="folding", coalesce=True, **common)
        wait_until(lambda: sum(e.code == ev.TASK_EXECUTED for e in events) >= 4, what="runs before")
        with Frozen(own_redis_server):
            time.sleep(3.0)
        wait_until(
            lambda: (
                {e.task_id for e in events if e.code == ev.TASK_RUNS_DROPPED}
                == {"strict", "folding"}
            ),
            timeout=30,
            what="both tasks reported",
        )
        ran_after = sum(e.code == ev.TASK_EXECUTED for e in events)
        wait_until(
            lambda: sum(e.code == ev.TASK_EXECUTED for e in events) >= ran_after + 4,
            what="runs after",
        )
    finally:
        scheduler.remove_all_tasks()
        scheduler.shutdown()
    dropped = {e.task_id: e for e in events if isinstance(e, ev.TaskRunsDroppedEvent)}
    assert len([e for e in events if e.code == ev.TASK_RUNS_DROPPED]) == 2  # one per task
    assert dropped["strict"].missed >= 10 and dropped["strict"].folded == 0
    assert dropped["folding"].folded >= 10
    missed = [e for e in events if e.code == ev.TASK_MISSED and e.task_id == "strict"]
    assert len(missed) == dropped["strict"].missed  # each missed run still has its event
    for task_id in ("strict", "folding"):
        lines = [
            r.getMessage() for r in caplog.records if f"(id {task_id!r}) in store" in r.getMessage()
        ]
        assert len(lines) == 1, lines
        count = dropped[task_id].missed or dropped[task_id].folded
        assert f"{count} run(s)" in lines[0]


def tasks_when_reachable(scheduler: AsyncIOScheduler) -> list[Any]:
    """get_tasks(), retried while the pool still hands out connections of the old server."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return scheduler.get_tasks()
        except (ConnectionError, redis.ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# -- a server that restarted empty --------------------------------------------------------------
def test_a_server_without_persistence_is_warned_about_and_a_wipe_is_reported(
    own_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The test server runs with --save "" --appendonly no: what a cache-style Redis looks like.
    scheduler = AsyncIOScheduler(
        stores={"default": RedisStore(url=own_redis_server.url, **keys())},
        isolated_event_loop=True,
    )
    wiped: list[ev.SchedulerEvent] = []
    scheduler.add_listener(wiped.append, ev.STORE_WIPED)
    caplog.set_level(logging.INFO, logger="asyncz")
    scheduler.add_task(functions.noop, "interval", seconds=0.2, id="tick")
    scheduler.add_task(functions.noop, "cron", hour=3, id="nightly")
    scheduler.start()
    try:
        warnings = [
            r.getMessage() for r in caplog.records if "without persistence" in r.getMessage()
        ]
        assert len(warnings) == 1 and "Durability" in warnings[0]
        assert scheduler.get_scheduler_info()["store_status"] == {"default": {"state": "ok"}}
        own_redis_server.stop()  # terminated without saving: it comes back empty
        own_redis_server.start()
        wait_until(lambda: wiped, timeout=30, what="the wipe reported")
        assert tasks_when_reachable(scheduler) == []  # the tasks are gone, said loudly:
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        lost = [m for m in errors if "lost its data" in m]
        assert len(lost) == 1, errors
        assert isinstance(wiped[0], ev.StoreWipedEvent)
        assert wiped[0].alias == "default"
        assert "marker" in wiped[0].detail
        status = scheduler.get_scheduler_info()["store_status"]["default"]
        assert status["state"] == "wiped"
        assert isinstance(status["wiped_at"], datetime)
        time.sleep(1.0)  # further passes see the new marker: reported once
        assert len(wiped) == 1
    finally:
        scheduler.remove_all_tasks()
        scheduler.shutdown()


def test_a_server_that_refuses_config_starts_without_a_warning(tmp_path: Any) -> None:

    class Recorder(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.DEBUG)
            self.messages: list[tuple[int, str]] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append((record.levelno, record.getMessage()))

    server = RedisServer(redis_binary(), tmp_path / "redis", None, "--rename-command", "CONFIG", "")
    server.start()
    # A handler on the store's own logger: what other tests did to logging cannot hide it.
    store_logger = logging.getLogger("asyncz.stores.default")
    recorder, level = Recorder(), store_logger.level
    store_logger.addHandler(recorder)
    store_logger.setLevel(logging.DEBUG)
    try:
        scheduler = AsyncIOScheduler(
            stores={"default": RedisStore(url=server.url, **keys())}, isolated_event_loop=True
        )
        scheduler.start(paused=True)
        try:
            assert not [m for lvl, m in recorder.messages if lvl >= logging.WARNING]
            assert any("Cannot check the persistence" in m for _, m in recorder.messages)
        finally:
            scheduler.shutdown()
    finally:
        store_logger.removeHandler(recorder)
        store_logger.setLevel(level)
        server.stop()


def test_asyncz_run_against_an_unreachable_redis_prints_one_line(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from asyncz.cli import main

    port = free_port()
    config = tmp_path / "asyncz.toml"
    config.write_text(
        "[stores.default]\n"
        'type = "redis"\n'
        f'url = "redis://127.0.0.1:{port}/0"\n'
        "[tasks.tick]\n"
        'fn = "asyncz.testing.functions:noop"\n'
        'trigger = { type = "interval", seconds = 1 }\n'
    )
    result = CliRunner().invoke(main, ["run", str(config), "--log-level", "ERROR"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "asyncz.stores.default.url" in lines[0]
    assert f"127.0.0.1:{port}" in lines[0]
    assert "Traceback" not in result.output
