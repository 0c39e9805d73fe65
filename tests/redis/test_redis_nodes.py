"""Several schedulers (nodes) on one Redis store, against the session's redis-server: every
fire time runs once, a task added on one node is run by another that heard of it over
pub/sub, a node restarted under the same identity takes its leftover claims back."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from asyncz import events as ev
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores.base import call_sync
from asyncz.testing import functions, make_task, wait_until
from asyncz_redis import RedisStore
from conftest import RedisServer

pytestmark = pytest.mark.redis
UTC = timezone.utc


def keys() -> dict[str, str]:
    ns = f"t-{uuid.uuid4().hex[:10]}"
    return {"tasks_key": f"{ns}.tasks", "run_times_key": f"{ns}.run_times"}


def node(server: RedisServer, shared: dict[str, str], identity: str) -> AsyncIOScheduler:
    return AsyncIOScheduler(
        stores={"default": RedisStore(url=server.url, **shared)},
        identity=identity,
        isolated_event_loop=True,
    )


def test_two_nodes_run_every_fire_time_exactly_once(redis_server: RedisServer) -> None:
    shared = keys()
    nodes = [node(redis_server, shared, f"node-{name}") for name in "ab"]
    runs: list[tuple[str, str, datetime]] = []  # (node, task id, scheduled run time)
    lock = threading.Lock()

    def recorder(name: str) -> object:
        def record(event: ev.SchedulerEvent) -> None:
            assert isinstance(event, ev.TaskExecutionEvent)
            with lock:
                runs.append((name, event.task_id, event.scheduled_run_time))

        return record

    for scheduler in nodes:
        scheduler.add_listener(recorder(scheduler.identity), ev.TASK_EXECUTED)
        scheduler.start()
    start = datetime.now(UTC) + timedelta(seconds=0.5)
    try:
        for i in range(5):
            nodes[i % 2].add_task(
                functions.noop,
                "interval",
                seconds=0.2,
                start_at=start,
                id=f"tick-{i}",
                coalesce=False,
                misfire_grace_time=None,  # late runs still run: a gap would be a lost run
            )
        wait_until(lambda: datetime.now(UTC) > start + timedelta(seconds=3), what="3 s of runs")
        cutoff = datetime.now(UTC) - timedelta(seconds=0.5)
        expected = {
            (f"tick-{i}", start + timedelta(seconds=0.2 * k))
            for i in range(5)
            for k in range(int((cutoff - start).total_seconds() / 0.2) + 1)
        }

        def seen() -> set[tuple[str, datetime]]:
            with lock:
                return {(task_id, when) for _, task_id, when in runs}

        wait_until(lambda: expected <= seen(), timeout=30, what="every fire time up to the cutoff")
    finally:
        nodes[0].remove_all_tasks()
        for scheduler in nodes:
            scheduler.shutdown()
    counts = Counter((task_id, when) for _, task_id, when in runs)
    duplicates = {key: n for key, n in counts.items() if n > 1}
    assert not duplicates, duplicates
    assert len(expected) >= 5 * 10  # about 3 s of fire times per task


def asleep_until(scheduler: AsyncIOScheduler, when: datetime) -> bool:
    planned = scheduler.get_scheduler_info()["next_wakeup"]
    return planned is not None and abs((planned - when).total_seconds()) < 0.001


def test_a_task_added_on_one_node_is_run_by_another_that_heard_of_it(
    redis_server: RedisServer,
) -> None:
    shared = keys()
    adder = node(redis_server, shared, "node-adder")
    runner = node(redis_server, shared, "node-runner")
    store = runner.stores["default"]
    assert isinstance(store, RedisStore)
    assert store.poll_interval is None  # nothing but pub/sub can wake it before `far`
    ran: list[str] = []
    runner.add_listener(lambda e: ran.append(e.task_id), ev.TASK_EXECUTED)  # type: ignore[attr-defined]
    far = datetime.now(UTC) + timedelta(hours=1)
    runner.add_task(functions.noop, "date", run_at=far, id="far")
    runner.start()
    adder.start(paused=True)  # stores tasks, never runs anything
    try:
        for attempt in ("first", "after-reconnect"):
            # The runner sleeps until `far` (its pass is over; nothing else is due).
            wait_until(lambda: asleep_until(runner, far), what="the runner asleep")
            if attempt == "after-reconnect":
                # The subscription's connection drops: the listener subscribes again.
                with redis_server.client() as client:
                    client.client_kill_filter(_type="pubsub")
            due = datetime.now(UTC) + timedelta(seconds=1)
            adder.add_task(functions.noop, "date", run_at=due, id=attempt)
            wait_until(lambda name=attempt: name in ran, timeout=20, what=f"{attempt} ran")
        assert ran == ["first", "after-reconnect"]
    finally:
        adder.remove_all_tasks()
        adder.shutdown()
        runner.shutdown()


def test_a_node_restarted_under_its_identity_takes_its_leftover_claims_back(
    redis_server: RedisServer,
) -> None:
    """Claims of a process that died are the claims of its identity: the same identity's
    heartbeats would extend them forever, so its first acquire ends them."""
    shared = keys()
    due = datetime.now(UTC) - timedelta(seconds=1)
    crashed = RedisStore(url=redis_server.url, **shared)
    restarted = RedisStore(url=redis_server.url, **shared)
    for store in (crashed, restarted):
        call_sync(store, store.start(AsyncIOScheduler(), "default"))
    try:
        call_sync(crashed, crashed.add_task(make_task("held", due)))
        now = datetime.now(UTC)
        assert len(call_sync(crashed, crashed.acquire_due_tasks("node-a", now, 60.0, 10))) == 1
        # Another node must still wait for the lease; node-a's new process takes it at once.
        assert call_sync(restarted, restarted.acquire_due_tasks("node-b", now, 60.0, 10)) == []
        taken = call_sync(restarted, restarted.acquire_due_tasks("node-a", now, 60.0, 10))
        assert [t.id for t in taken] == ["held"]
        # Known from now on: a second acquire does not take its own claims again.
        assert call_sync(restarted, restarted.acquire_due_tasks("node-a", now, 60.0, 10)) == []
        taken[0].next_run_time = None
        assert len(call_sync(restarted, restarted.release_tasks("node-a", taken))) == 1
    finally:
        call_sync(restarted, restarted.remove_all_tasks())
        for store in (crashed, restarted):
            call_sync(store, store.shutdown())
