"""Lifecycle: reference-counted start/shutdown, waiting and cancelling at shutdown, loop
selection, context managers, NativeAsyncIOScheduler and shutdown-trigger tasks."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from asyncz import events as ev
from asyncz.exceptions import SchedulerNotRunningError
from asyncz.schedulers.asyncio import AsyncIOScheduler, NativeAsyncIOScheduler
from asyncz.schedulers.base import SchedulerState

UTC = timezone.utc

calls: list[str] = []
threads: list[str] = []


@pytest.fixture(autouse=True)
def _clear() -> None:
    calls.clear()
    threads.clear()


async def note(value: str = "ran") -> None:
    threads.append(threading.current_thread().name)
    calls.append(value)


def note_sync(value: str = "ran") -> None:
    threads.append(threading.current_thread().name)
    calls.append(value)


async def slow(seconds: float, value: str = "slow") -> None:
    calls.append(f"{value}:start")
    await asyncio.sleep(seconds)
    calls.append(f"{value}:end")


def slow_sync(seconds: float, value: str = "slow") -> None:
    calls.append(f"{value}:start")
    time.sleep(seconds)
    calls.append(f"{value}:end")


def now() -> datetime:
    return datetime.now(UTC)


def events(scheduler: AsyncIOScheduler, mask: int = ev.ALL_EVENTS) -> list[ev.SchedulerEvent]:
    seen: list[ev.SchedulerEvent] = []
    scheduler.add_listener(seen.append, mask)
    return seen


def codes(seen: list[ev.SchedulerEvent]) -> list[int]:
    return [e.code for e in seen]


def wait_until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


async def await_until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


# -- reference counting -----------------------------------------------------------------------
def test_start_and_shutdown_are_reference_counted_and_say_whether_they_acted() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    seen = events(scheduler, ev.SCHEDULER_START | ev.SCHEDULER_SHUTDOWN)
    assert scheduler.running is False and scheduler.state is SchedulerState.STATE_STOPPED
    assert scheduler.start() is True
    assert scheduler.running and scheduler.state is SchedulerState.STATE_RUNNING
    assert scheduler.start() is False  # nested: only counted
    assert scheduler.start(paused=True) is False  # nested: does not pause either
    assert scheduler.state is SchedulerState.STATE_RUNNING
    assert scheduler.shutdown() is False
    assert scheduler.stop() is False
    assert scheduler.running  # still one scope open
    assert scheduler.shutdown() is True
    assert scheduler.running is False and scheduler.state is SchedulerState.STATE_STOPPED
    assert codes(seen) == [ev.SCHEDULER_START, ev.SCHEDULER_SHUTDOWN]
    with pytest.raises(SchedulerNotRunningError):
        scheduler.shutdown()


def test_start_paused_runs_nothing_until_resumed() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_task(note, "date", run_at=now())
    assert scheduler.start(paused=True) is True
    try:
        assert scheduler.state is SchedulerState.STATE_PAUSED and scheduler.running
        time.sleep(0.2)
        assert calls == []
        scheduler.resume()
        assert scheduler.state is SchedulerState.STATE_RUNNING
        wait_until(lambda: calls == ["ran"])
    finally:
        scheduler.shutdown()


def test_a_stopped_scheduler_starts_again() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    for round_ in range(3):
        assert scheduler.start() is True
        scheduler.add_task(note, "date", run_at=now(), args=[str(round_)])
        wait_until(lambda r=round_: str(r) in calls)
        assert scheduler.shutdown() is True
    assert calls == ["0", "1", "2"]


def test_a_failed_start_leaves_the_scheduler_stopped_and_startable() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC, stores={"default": {"type": "memory"}})
    scheduler.add_task(note, "date", run_at=now(), store="nowhere")
    with pytest.raises(KeyError, match="nowhere"):
        scheduler.start()
    assert scheduler.running is False and scheduler.event_loop is None
    scheduler.remove_all_tasks()
    assert scheduler.start() is True
    assert scheduler.shutdown() is True


# -- where it runs ------------------------------------------------------------------------------
def test_started_without_a_loop_it_runs_its_own_thread_and_joins_it() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_task(note, "interval", seconds=0.02)
    scheduler.start()
    loop = scheduler.event_loop
    assert loop is not None and loop.is_running()
    worker = next(t for t in threading.enumerate() if t.name == "asyncz-scheduler")
    wait_until(lambda: len(calls) >= 3)
    assert set(threads) == {"asyncz-scheduler"}
    scheduler.shutdown()
    assert not worker.is_alive() and loop.is_closed()
    assert scheduler.event_loop is None


async def test_started_inside_a_loop_it_uses_that_loop() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start()
    try:
        assert scheduler.event_loop is asyncio.get_running_loop()
        scheduler.add_task(note, "date", run_at=now())
        await await_until(lambda: calls == ["ran"])
        assert threads == [threading.current_thread().name]
    finally:
        await scheduler.shutdown_async()


async def test_isolated_event_loop_runs_on_its_own_thread_even_inside_a_loop() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC, isolated_event_loop=True)
    scheduler.start()
    try:
        loop = scheduler.event_loop
        assert loop is not None and loop is not asyncio.get_running_loop()
        scheduler.add_task(note, "date", run_at=now())
        await await_until(lambda: calls == ["ran"])
        assert threads == ["asyncz-scheduler"]
    finally:
        scheduler.shutdown()
    assert loop.is_closed()


def test_an_explicit_loop_that_is_not_running_is_run_and_given_back_open() -> None:
    loop = asyncio.new_event_loop()
    try:
        scheduler = AsyncIOScheduler(timezone=UTC, event_loop=loop)
        with scheduler:
            assert scheduler.event_loop is loop
            scheduler.add_task(note, "date", run_at=now())
            wait_until(lambda: calls == ["ran"])
        assert not loop.is_running() and not loop.is_closed()
    finally:
        loop.close()


def test_an_explicit_running_loop_on_another_thread_is_used_as_is() -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="app-loop", daemon=True)
    thread.start()
    try:
        scheduler = AsyncIOScheduler(timezone=UTC, event_loop=loop)
        scheduler.start()
        scheduler.add_task(note, "date", run_at=now())
        wait_until(lambda: calls == ["ran"])
        assert threads == ["app-loop"]
        assert scheduler.shutdown() is True
        assert loop.is_running()  # not ours to stop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_a_closed_explicit_loop_is_refused() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    scheduler = AsyncIOScheduler(timezone=UTC, event_loop=loop)
    with pytest.raises(RuntimeError, match="closed"):
        scheduler.start()
    assert scheduler.running is False


def test_shutdown_after_the_application_loop_ended_still_cleans_up() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_task(note, "shutdown")

    async def app() -> None:
        scheduler.start()
        await asyncio.sleep(0.05)

    asyncio.run(app())
    assert scheduler.shutdown() is True
    assert calls == ["ran"] and not scheduler.running


# -- waiting for running tasks ------------------------------------------------------------------
@pytest.mark.parametrize("fn", [slow, slow_sync], ids=["coroutine", "thread"])
def test_shutdown_waits_for_running_tasks(fn) -> None:  # type: ignore[no-untyped-def]
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start()
    scheduler.add_task(fn, "date", run_at=now(), args=[0.3])
    wait_until(lambda: "slow:start" in calls)
    started = time.monotonic()
    assert scheduler.shutdown(wait=True) is True
    assert calls == ["slow:start", "slow:end"]
    assert time.monotonic() - started >= 0.2


def test_shutdown_timeout_cancels_and_reports_what_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    seen = events(scheduler, ev.TASK_ERROR | ev.TASK_EXECUTED)
    scheduler.start()
    scheduler.add_task(slow, "date", run_at=now(), args=[30], id="stuck")
    scheduler.add_task(slow, "date", run_at=now(), args=[0.05, "quick"], id="quick")
    wait_until(lambda: "slow:start" in calls and "quick:end" in calls)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="asyncz"):
        assert scheduler.shutdown(wait=True, timeout=0.3) is True
    assert time.monotonic() - started >= 0.25  # and not the 30 s of the stuck run:
    assert "slow:end" not in calls
    assert "timed out after 0.3 s with 1 task(s) still running" in caplog.text
    assert "Task 'slow' (id 'stuck') running since " in caplog.text
    errors = [e for e in seen if e.code == ev.TASK_ERROR]
    assert [e.task_id for e in errors] == ["stuck"]  # type: ignore[attr-defined]
    assert isinstance(errors[0].exception, asyncio.CancelledError)  # type: ignore[attr-defined]


def test_shutdown_without_waiting_cancels_running_coroutines() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    seen = events(scheduler, ev.TASK_ERROR)
    scheduler.start()
    scheduler.add_task(slow, "date", run_at=now(), args=[30])
    wait_until(lambda: "slow:start" in calls)
    assert scheduler.shutdown(wait=False) is True
    assert "slow:end" not in calls  # it returned without waiting for the 30 s run
    wait_until(lambda: len(seen) == 1)
    assert "slow:end" not in calls


async def test_shutdown_async_awaits_running_tasks_on_the_loop() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start()
    scheduler.add_task(slow, "date", run_at=now(), args=[0.2])
    await await_until(lambda: "slow:start" in calls)
    assert await scheduler.shutdown_async() is True
    assert calls == ["slow:start", "slow:end"]


async def test_sync_shutdown_on_the_scheduler_loop_stops_at_once_and_finishes_later() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    seen = events(scheduler, ev.SCHEDULER_SHUTDOWN)
    scheduler.start()
    scheduler.add_task(slow, "date", run_at=now(), args=[0.1])
    await await_until(lambda: "slow:start" in calls)
    assert scheduler.shutdown() is True  # cannot block the loop the task runs on
    assert scheduler.running is False and len(seen) == 1
    await await_until(lambda: "slow:end" in calls)


# -- context managers --------------------------------------------------------------------------
def test_with_blocks_nest_and_only_the_outermost_starts_and_stops() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    seen = events(scheduler, ev.SCHEDULER_START | ev.SCHEDULER_SHUTDOWN)
    with scheduler as entered:
        assert entered is scheduler and scheduler.running
        with scheduler:
            with scheduler:
                scheduler.add_task(note, "date", run_at=now())
            assert scheduler.running
        wait_until(lambda: calls == ["ran"])
        assert scheduler.running
    assert not scheduler.running
    assert codes(seen) == [ev.SCHEDULER_START, ev.SCHEDULER_SHUTDOWN]


def test_with_block_exits_cleanly_on_an_exception() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    with pytest.raises(ZeroDivisionError), scheduler:
        1 / 0  # noqa: B018
    assert not scheduler.running


async def test_async_with_blocks_nest_and_wait_for_running_tasks() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    async with scheduler as entered:
        assert entered is scheduler
        assert scheduler.event_loop is asyncio.get_running_loop()
        async with scheduler:
            scheduler.add_task(slow, "date", run_at=now(), args=[0.1])
            await await_until(lambda: "slow:start" in calls)
        assert scheduler.running
    assert not scheduler.running
    assert calls == ["slow:start", "slow:end"]


def test_sync_and_async_context_managers_share_the_count() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC, isolated_event_loop=True)

    async def inner() -> None:
        async with scheduler:
            assert scheduler.running
        assert scheduler.running  # the outer with still holds it

    with scheduler:
        asyncio.run(inner())
    assert not scheduler.running


# -- NativeAsyncIOScheduler ---------------------------------------------------------------------
async def test_native_start_and_shutdown_are_awaited_and_reference_counted() -> None:
    scheduler = NativeAsyncIOScheduler(timezone=UTC)
    seen = events(scheduler, ev.SCHEDULER_START | ev.SCHEDULER_SHUTDOWN)
    assert await scheduler.start() is True
    assert await scheduler.start() is False
    assert scheduler.event_loop is asyncio.get_running_loop() and scheduler.running
    scheduler.add_task(slow, "date", run_at=now(), args=[0.1])
    await await_until(lambda: "slow:start" in calls)
    assert await scheduler.shutdown() is False
    assert await scheduler.stop() is True
    assert calls == ["slow:start", "slow:end"] and not scheduler.running
    assert codes(seen) == [ev.SCHEDULER_START, ev.SCHEDULER_SHUTDOWN]
    with pytest.raises(SchedulerNotRunningError):
        await scheduler.shutdown()


async def test_native_ignores_isolation_and_always_uses_the_running_loop() -> None:
    scheduler = NativeAsyncIOScheduler(timezone=UTC, isolated_event_loop=True)
    async with scheduler:
        assert scheduler.event_loop is asyncio.get_running_loop()
        async with scheduler:
            pass
        assert scheduler.running
    assert not scheduler.running


async def test_native_refuses_a_sync_with_block() -> None:
    scheduler = NativeAsyncIOScheduler(timezone=UTC)
    with pytest.raises(TypeError, match="async with"), scheduler:
        pass
    assert not scheduler.running


async def test_native_shutdown_from_another_loop_is_awaitable() -> None:
    scheduler = NativeAsyncIOScheduler(timezone=UTC)

    await scheduler.start()
    loop = asyncio.get_running_loop()

    def elsewhere() -> bool:
        async def stop() -> bool:
            return await scheduler.shutdown()

        return asyncio.run(stop())

    stopped = loop.run_in_executor(None, elsewhere)
    assert await stopped is True
    assert not scheduler.running


# -- shutdown-trigger tasks ---------------------------------------------------------------------
def test_shutdown_tasks_run_once_at_shutdown_sync_and_async() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_task(note, "shutdown", args=["async"], id="a")
    scheduler.add_task(note_sync, "shutdown", args=["sync"], id="s")
    with scheduler:
        time.sleep(0.1)
        assert calls == []
        with scheduler:
            pass  # an inner scope does not shut down, so they do not run
        assert calls == []
    assert sorted(calls) == ["async", "sync"]
    scheduler.start()
    scheduler.shutdown()
    assert sorted(calls) == ["async", "sync"]  # they were removed after running


async def test_native_shutdown_awaits_shutdown_tasks() -> None:
    scheduler = NativeAsyncIOScheduler(timezone=UTC)
    scheduler.add_task(slow, "shutdown", args=[0.1, "async"])
    scheduler.add_task(slow_sync, "shutdown", args=[0.1, "sync"])
    await scheduler.start()
    assert await scheduler.shutdown() is True
    assert calls == ["async:start", "async:end", "sync:start", "sync:end"]


def test_late_runs_are_not_started_after_shutdown() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start()
    scheduler.add_task(note, "date", run_at=now() + timedelta(seconds=0.3))
    scheduler.shutdown()
    time.sleep(0.4)
    assert calls == []


# -- shutdown tasks on every path ---------------------------------------------------------------
async def farewell(value: str, seconds: float = 0.05) -> None:
    await asyncio.sleep(seconds)
    calls.append(value)


def farewell_sync(value: str) -> None:
    calls.append(value)


def add_farewells(scheduler: AsyncIOScheduler, count: int = 10) -> set[str]:
    for i in range(count):
        scheduler.add_task(farewell, "shutdown", args=[f"a{i}"], id=f"a{i}")
        scheduler.add_task(farewell_sync, "shutdown", args=[f"s{i}"], id=f"s{i}")
    return {f"{kind}{i}" for kind in "as" for i in range(count)}


def test_sync_shutdown_inside_asyncio_run_still_runs_every_shutdown_task() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    expected = add_farewells(scheduler)

    async def main() -> None:
        scheduler.start()
        await asyncio.sleep(0.05)
        scheduler.shutdown()  # returns at once; asyncio.run() then tears the loop down

    asyncio.run(main())
    assert set(calls) == expected and not scheduler.running


def test_sync_shutdown_from_another_thread_waits_for_the_shutdown_tasks() -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="app-loop", daemon=True)
    thread.start()
    try:
        scheduler = AsyncIOScheduler(timezone=UTC, event_loop=loop)
        expected = add_farewells(scheduler, 3)
        scheduler.start()
        assert scheduler.shutdown() is True
        assert set(calls) == expected  # before shutdown() returned
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


async def test_shutdown_async_and_async_with_run_the_shutdown_tasks_first() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    expected = add_farewells(scheduler, 3)
    async with scheduler:
        pass
    assert set(calls) == expected
    calls.clear()
    expected = add_farewells(scheduler, 3)
    scheduler.start()
    assert await scheduler.shutdown_async() is True
    assert set(calls) == expected


async def test_a_cancelled_shutdown_async_caller_does_not_lose_the_shutdown_tasks() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_task(farewell, "shutdown", args=["late", 0.2])
    scheduler.start()
    stopping = asyncio.create_task(scheduler.shutdown_async())
    await asyncio.sleep(0.05)
    stopping.cancel()
    await await_until(lambda: calls == ["late"])


@pytest.mark.parametrize("paused", ["started", "paused later"])
def test_a_paused_scheduler_runs_no_shutdown_task_and_removes_none(
    paused: str, tmp_path: Path
) -> None:
    from asyncz.stores.file import FileStore

    def scheduler_on(directory: Path) -> AsyncIOScheduler:
        return AsyncIOScheduler(timezone=UTC, stores={"default": FileStore(directory)})

    for store in ("memory", "file"):
        scheduler = AsyncIOScheduler(timezone=UTC) if store == "memory" else scheduler_on(tmp_path)
        scheduler.add_task(farewell_sync, "shutdown", args=[store], id="bye")
        scheduler.start(paused=paused == "started")
        if paused == "paused later":
            scheduler.pause()
        scheduler.shutdown()
        assert calls == []
        if store == "file":
            scheduler = scheduler_on(tmp_path)
        scheduler.start(paused=True)
        try:
            assert scheduler.get_task("bye") is not None
        finally:
            scheduler.shutdown()


def test_a_persistent_store_keeps_its_shutdown_tasks_for_the_next_start(tmp_path: Path) -> None:
    from asyncz.stores.file import FileStore

    for round_ in range(2):
        scheduler = AsyncIOScheduler(timezone=UTC, stores={"default": FileStore(tmp_path)})
        if round_ == 0:
            scheduler.add_task(farewell_sync, "shutdown", args=["bye"], id="bye")
        with scheduler:
            pass
        assert calls == ["bye"] * (round_ + 1)  # ran at each shutdown, never removed


# -- the shutdown timeout ------------------------------------------------------------------------
def test_shutdown_timeout_is_a_validated_setting_and_a_keyword() -> None:
    from asyncz.exceptions import ConfigurationError

    assert AsyncIOScheduler(timezone=UTC).shutdown_timeout == 30.0
    assert AsyncIOScheduler(timezone=UTC, shutdown_timeout=2).shutdown_timeout == 2.0
    assert AsyncIOScheduler(timezone=UTC, shutdown_timeout=None).shutdown_timeout is None
    configured = AsyncIOScheduler(global_config={"asyncz.shutdown_timeout": "1.5"})
    assert configured.shutdown_timeout == 1.5
    with pytest.raises(ConfigurationError, match=r"asyncz\.shutdown_timeout"):
        AsyncIOScheduler(global_config={"asyncz.shutdown_timeout": "-1"})


async def hang(value: str = "hung") -> None:
    calls.append(f"{value}:start")
    await asyncio.sleep(3600)
    calls.append(f"{value}:end")


@pytest.mark.timeout(60)
async def test_async_with_returns_at_the_shutdown_timeout_and_names_what_it_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduler = AsyncIOScheduler(timezone=UTC, shutdown_timeout=0.3)
    seen = events(scheduler, ev.TASK_ERROR)
    with caplog.at_level(logging.WARNING, logger="asyncz"):
        async with scheduler:
            scheduler.add_task(hang, "date", run_at=now(), id="hour-long", name="nap")
            await await_until(lambda: calls == ["hung:start"])
    assert calls == ["hung:start"] and not scheduler.running
    lines = [r.getMessage() for r in caplog.records if "hour-long') running" in r.getMessage()]
    assert len(lines) == 1
    assert re.search(r"Task 'nap' \(id 'hour-long'\) running since \d{4}-\d\d-\d\dT", lines[0])
    assert lines[0].endswith(": cancelled")
    assert [type(e.exception) for e in seen] == [asyncio.CancelledError]  # type: ignore[attr-defined]


@pytest.mark.timeout(60)
def test_a_hung_thread_is_reported_and_abandoned(caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()

    def stuck() -> None:
        calls.append("stuck:start")
        release.wait(30)

    scheduler = AsyncIOScheduler(timezone=UTC, shutdown_timeout=0.3)
    scheduler.start()
    try:
        scheduler.add_task(stuck, "date", run_at=now(), id="stuck")
        wait_until(lambda: calls == ["stuck:start"])
        with caplog.at_level(logging.WARNING, logger="asyncz"):
            assert scheduler.shutdown() is True  # returns, the thread still runs
        assert not scheduler.running
        [line] = [
            r.getMessage() for r in caplog.records if "(id 'stuck') running" in r.getMessage()
        ]
        assert line.endswith(": abandoned, still running")
    finally:
        release.set()


@pytest.mark.timeout(60)
def test_a_hung_shutdown_task_is_cancelled_at_the_shutdown_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduler = AsyncIOScheduler(timezone=UTC, shutdown_timeout=0.3)
    scheduler.add_task(hang, "shutdown", args=["bye"], id="bye")
    scheduler.add_task(farewell_sync, "shutdown", args=["after"], id="after")
    scheduler.start()
    with caplog.at_level(logging.WARNING, logger="asyncz"):
        assert scheduler.shutdown() is True
    assert "bye:end" not in calls
    assert "Shutdown task 'hang' (id 'bye') was cancelled at the shutdown timeout" in caplog.text


async def test_task_info_shows_running_instances_and_since_when() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start()
    try:
        scheduler.add_task(hang, "interval", hours=1, id="idle", next_run_time=None)
        submitted = now()
        scheduler.add_task(hang, "interval", hours=1, id="busy", next_run_time=now())
        await await_until(lambda: calls == ["hung:start"])
        info = scheduler.get_task_info("busy")
        assert info is not None and info.running == 1
        assert info.running_since is not None
        assert submitted - timedelta(seconds=1) <= info.running_since <= now()
        idle = scheduler.get_task_info("idle")
        assert idle is not None and (idle.running, idle.running_since) == (0, None)
        by_id = {i.id: i.running for i in scheduler.get_task_infos()}
        assert by_id == {"busy": 1, "idle": 0}
    finally:
        await scheduler.shutdown_async(wait=False)


# -- docs/lifecycle.md --------------------------------------------------------------------------
DOC = Path(__file__).resolve().parents[2] / "docs" / "lifecycle.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def doc_blocks() -> list[tuple[int, str]]:
    text = DOC.read_text()
    return [(text[: m.start()].count("\n") + 1, m.group(1)) for m in BLOCK.finditer(text)]


@pytest.mark.parametrize(("line", "code"), doc_blocks(), ids=lambda v: str(v)[:12])
def test_doc_block_runs(line: int, code: str) -> None:
    namespace: dict[str, object] = {"__name__": f"docs_lifecycle_{line}"}
    exec(compile(code, f"lifecycle.md:{line}", "exec"), namespace)
