"""What runs leave and how they behave: history records, timeouts, retries, overlap,
backfill, pause notes. Real stores only (memory, file); timings asserted with generous
tolerances (the machine may be loaded)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from asyncz import events as ev
from asyncz.exceptions import BackfillLimitError
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores.file import FileStore
from asyncz.stores.memory import MemoryStore
from asyncz.tasks.runs import RunRecord

UTC = timezone.utc
seen: list[Any] = []
spans: list[tuple[float, float]] = []


@pytest.fixture(autouse=True)
def _clear() -> None:
    seen.clear()
    spans.clear()


async def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def soon(seconds: float = 0.05) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


async def hangs() -> None:
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        seen.append("cancelled")
        raise


async def fails() -> None:
    seen.append(time.monotonic())
    raise ValueError("boom")


def fails_sync() -> None:
    raise ValueError("boom")


async def slow() -> str:
    spans.append((time.monotonic(), 0.0))
    await asyncio.sleep(0.25)
    spans[-1] = (spans[-1][0], time.monotonic())
    return "done"


async def quick(value: int = 0) -> int:
    return value


def blocks() -> None:
    time.sleep(0.6)
    seen.append("thread ended")


def make(store: str, tmp_path: Path, **options: Any) -> AsyncIOScheduler:
    backend = FileStore(tmp_path / "tasks", fsync=False) if store == "file" else MemoryStore()
    return AsyncIOScheduler(timezone=UTC, stores={"default": backend}, **options)


STORES = ["memory", "file"]


async def runs_of(scheduler: AsyncIOScheduler, task_id: str, **kw: Any) -> list[RunRecord]:
    return await scheduler.get_task_runs_async(task_id, limit=None, **kw)


# -- history ---------------------------------------------------------------------------------
@pytest.mark.parametrize("store", STORES)
async def test_every_run_leaves_a_record(store: str, tmp_path: Path) -> None:
    scheduler = make(store, tmp_path)
    scheduler.start()
    try:
        scheduler.add_task(quick, "date", run_at=soon(), args=[7], id="q")
        scheduler.add_task(fails, "date", run_at=soon(), id="f")
        await wait_for(lambda: len(scheduler.get_task_runs(limit=None)) >= 2)
        (ok,) = await runs_of(scheduler, "q")
        assert (ok.outcome, ok.return_repr, ok.attempt, ok.source) == (
            "success",
            "7",
            1,
            "scheduler",
        )
        assert ok.node == scheduler.identity and ok.executor == "default"
        assert ok.started_at is not None and ok.finished_at is not None
        assert ok.submitted_at is not None and ok.submitted_at <= ok.started_at <= ok.finished_at
        assert ok.duration is not None and ok.duration >= 0 and ok.lateness is not None
        (bad,) = await runs_of(scheduler, "f", outcome="error")
        assert (bad.error_type, bad.error_message) == ("ValueError", "boom")
        assert bad.traceback is not None and "ValueError: boom" in bad.traceback
        with pytest.raises(ValueError, match="valid outcomes"):
            await scheduler.get_task_runs_async(outcome="exploded")
    finally:
        scheduler.shutdown()


async def test_history_can_be_turned_off(tmp_path: Path) -> None:
    scheduler = make("memory", tmp_path, global_config={"asyncz.history.enabled": "false"})
    scheduler.start()
    try:
        scheduler.add_task(quick, "date", run_at=soon(0.01), id="q")
        await asyncio.sleep(0.3)
        assert await scheduler.get_task_runs_async() == []
    finally:
        scheduler.shutdown()


async def test_last_run_shows_in_task_info_and_filters(tmp_path: Path) -> None:
    scheduler = make("memory", tmp_path)
    scheduler.start()
    try:
        scheduler.add_task(fails, "interval", hours=1, next_run_time=soon(), id="bad")
        scheduler.add_task(quick, "interval", hours=1, next_run_time=soon(), id="good")
        await wait_for(lambda: len(scheduler.get_task_runs(limit=None)) >= 2)
        info = await scheduler.get_task_info_async("bad")
        assert info is not None and info.last_run is not None
        assert info.last_run.outcome == "error" and info.last_outcome == "error"
        failing = await scheduler.get_task_infos_async(q="last:error")
        assert [i.id for i in failing] == ["bad"]
    finally:
        scheduler.shutdown()


# -- timeouts --------------------------------------------------------------------------------
async def test_a_coroutine_is_cancelled_at_its_timeout(tmp_path: Path) -> None:
    scheduler = make("memory", tmp_path)
    events: list[Any] = []
    scheduler.add_listener(events.append, ev.TASK_TIMEOUT | ev.TASK_ERROR)
    scheduler.start()
    try:
        began = time.monotonic()
        scheduler.add_task(hangs, "date", run_at=soon(0.01), id="h", timeout=0.2)
        await wait_for(lambda: events)
        assert seen == ["cancelled"]  # the coroutine saw its cancellation
        assert 0.15 < time.monotonic() - began < 5
        (event,) = events
        assert event.code == ev.TASK_TIMEOUT and event.outcome == "timeout"
        (record,) = await runs_of(scheduler, "h")
        assert record.outcome == "timeout" and record.error_type == "TaskTimeoutError"
        assert record.duration is not None and record.duration >= 0.15
    finally:
        scheduler.shutdown()


async def test_a_thread_is_reported_at_its_timeout_and_keeps_its_slot(tmp_path: Path) -> None:
    scheduler = make("memory", tmp_path, executors={"default": {"type": "threadpool"}})
    scheduler.start()
    try:
        scheduler.add_task(blocks, "date", run_at=soon(0.01), id="b", timeout=0.1)
        await wait_for(lambda: scheduler.get_task_runs("b"))
        (record,) = await runs_of(scheduler, "b")
        assert record.outcome == "timeout"
        assert "thread ended" not in seen  # reported at the deadline, not at the end
        assert scheduler.executors["default"].running_instances("b") == 1
        await wait_for(lambda: seen == ["thread ended"])
        await wait_for(lambda: scheduler.executors["default"].running_instances("b") == 0)
        assert len(await runs_of(scheduler, "b")) == 1  # the late end is not a second record
    finally:
        scheduler.shutdown()


# -- retries ---------------------------------------------------------------------------------
@pytest.mark.parametrize("store", STORES)
async def test_retries_are_attempts_of_the_same_run_at_the_expected_spacing(
    store: str, tmp_path: Path
) -> None:
    scheduler = make(store, tmp_path)
    retried: list[Any] = []
    scheduler.add_listener(retried.append, ev.TASK_RETRY_SCHEDULED)
    scheduler.start()
    try:
        scheduler.add_task(
            fails, "date", run_at=soon(0.01), id="r", retries=2, retry_delay=0.3, retry_backoff=2
        )
        await wait_for(lambda: len(scheduler.get_task_runs("r")) >= 3, timeout=20)
        records = sorted(await runs_of(scheduler, "r"), key=lambda r: r.attempt)
        assert [r.attempt for r in records] == [1, 2, 3]
        assert [r.source for r in records] == ["scheduler", "retry", "retry"]
        assert {r.scheduled_run_time for r in records} == {records[0].scheduled_run_time}
        assert all(r.outcome == "error" for r in records)
        starts = [r.started_at for r in records]
        assert all(s is not None for s in starts)
        first_gap = (starts[1] - starts[0]).total_seconds()  # type: ignore[operator]
        second_gap = (starts[2] - starts[1]).total_seconds()  # type: ignore[operator]
        assert 0.3 <= first_gap < 0.3 + 2.0
        assert 0.6 <= second_gap < 0.6 + 2.0
        assert [e.attempt for e in retried] == [2, 3]
        await asyncio.sleep(0.2)
        # No attempts left and nothing else to run: the one-shot task is gone.
        assert await scheduler.get_task_async("r") is None
        assert len(await runs_of(scheduler, "r")) == 3
    finally:
        scheduler.shutdown()


async def test_a_pending_retry_is_stored_with_the_task(tmp_path: Path) -> None:
    scheduler = make("file", tmp_path)
    scheduler.start()
    try:
        scheduler.add_task(
            fails_sync,
            "interval",
            hours=1,
            next_run_time=soon(0.01),
            id="p",
            retries=1,
            retry_delay=60,
        )
        await wait_for(lambda: scheduler.get_task_runs("p"))
        await wait_for(lambda: scheduler.get_task("p").pending_runs)  # type: ignore[union-attr]
    finally:
        scheduler.shutdown()
    # A new scheduler (another process, after a restart) reads the retry from the store.
    again = make("file", tmp_path)
    again.start()
    try:
        task = await again.get_task_async("p")
        assert task is not None
        (pending,) = task.pending_runs
        assert (pending.attempt, pending.source) == (2, "retry")
        assert task.next_run_time == pending.due < task.scheduled_next  # type: ignore[operator]
        info = await again.get_task_info_async("p")
        assert info is not None and info.pending_runs == task.pending_runs
        await again.pause_task_async("p", note="investigating")
        paused = await again.get_task_async("p")
        assert paused is not None and paused.pending_runs == ()  # pausing drops owed runs
    finally:
        again.shutdown()


# -- overlap ---------------------------------------------------------------------------------
async def test_buffer_one_never_overlaps_and_skips_the_rest(tmp_path: Path) -> None:
    scheduler = make("memory", tmp_path)
    scheduler.start()
    try:
        scheduler.add_task(
            slow, "interval", seconds=0.1, id="s", overlap="buffer_one", misfire_grace_time=None
        )
        await wait_for(lambda: len([s for s in spans if s[1]]) >= 3, timeout=15)
        scheduler.pause_task("s")
        await asyncio.sleep(0.6)
        done = sorted(s for s in spans if s[1])
        for (_, end), (start, _) in itertools.pairwise(done):
            assert start >= end  # no two runs overlap
        outcomes = {r.outcome for r in await runs_of(scheduler, "s")}
        assert {"success", "skipped"} <= outcomes
    finally:
        scheduler.shutdown()


async def test_cancel_other_cancels_the_running_coroutine(tmp_path: Path) -> None:
    scheduler = make("memory", tmp_path)
    scheduler.start()
    try:
        scheduler.add_task(hangs, "interval", seconds=0.2, id="c", overlap="cancel_other")
        await wait_for(lambda: "cancelled" in seen, timeout=10)
        await wait_for(lambda: scheduler.get_task_runs("c", outcome="cancelled"))
    finally:
        scheduler.shutdown(wait=False)


async def test_allow_all_ignores_max_instances(tmp_path: Path) -> None:
    scheduler = make("memory", tmp_path)
    scheduler.start()
    try:
        scheduler.add_task(slow, "interval", seconds=0.05, id="a", overlap="allow_all")
        await wait_for(lambda: len(spans) >= 3)
        assert scheduler.executors["default"].running_instances("a") >= 2
    finally:
        scheduler.shutdown()


# -- backfill and pause notes ----------------------------------------------------------------
async def test_backfill_runs_the_window_with_its_source(tmp_path: Path) -> None:
    scheduler = make("memory", tmp_path)
    scheduler.start()
    try:
        start = datetime(2030, 1, 1, tzinfo=UTC)
        scheduler.add_task(quick, "interval", minutes=10, start_at=start, id="b")
        times = await scheduler.backfill_async("b", start, start + timedelta(hours=1), limit=10)
        assert times == [start + timedelta(minutes=10 * i) for i in range(7)]
        await wait_for(lambda: len(scheduler.get_task_runs("b")) == 7)
        records = await runs_of(scheduler, "b")
        assert {r.source for r in records} == {"backfill"}
        assert sorted(r.scheduled_run_time for r in records) == times
        with pytest.raises(BackfillLimitError, match="limit of 3"):
            await scheduler.backfill_async("b", start, start + timedelta(hours=1), limit=3)
    finally:
        scheduler.shutdown()


async def test_pause_keeps_a_note(tmp_path: Path) -> None:
    scheduler = make("memory", tmp_path)
    scheduler.start()
    try:
        scheduler.add_task(quick, "interval", hours=1, id="n")
        await scheduler.pause_task_async("n", note="deploy freeze (ops)")
        info = await scheduler.get_task_info_async("n")
        assert info is not None and info.pause_note == "deploy freeze (ops)"
        assert info.paused_at is not None
        (record,) = await runs_of(scheduler, "n", outcome="paused")
        assert record.note == "deploy freeze (ops)"
        await scheduler.resume_task_async("n")
        info = await scheduler.get_task_info_async("n")
        assert info is not None and info.pause_note is None and info.last_run is None
    finally:
        scheduler.shutdown()


def test_pause_note_must_be_text() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_task(quick, "interval", hours=1, id="n")
    with pytest.raises(TypeError, match="note"):
        scheduler.pause_task("n", note=42)  # type: ignore[arg-type]


def sleeps_in_child(seconds: float) -> None:
    time.sleep(seconds)


async def test_a_process_run_is_terminated_at_its_timeout(tmp_path: Path) -> None:
    scheduler = make(
        "memory", tmp_path, executors={"default": {"type": "processpool", "max_workers": 1}}
    )
    scheduler.start()
    try:
        began = time.monotonic()
        scheduler.add_task(
            sleeps_in_child, "date", run_at=soon(0.01), args=[60], id="p", timeout=1.0
        )
        await wait_for(lambda: scheduler.get_task_runs("p"), timeout=30)
        (record,) = await runs_of(scheduler, "p")
        assert record.outcome == "timeout"
        assert time.monotonic() - began < 30  # terminated, not waited for
        await wait_for(lambda: scheduler.executors["default"].running_instances("p") == 0)
    finally:
        scheduler.shutdown()
