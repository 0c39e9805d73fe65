"""The in-memory history ring's fast path: the scheduler hands a store that keeps no history
of its own (the memory store) the raw values of its runs, and the records are built when
first read; a store that overrides ``add_runs`` still gets records."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores._history import RunRing
from asyncz.stores.memory import MemoryStore
from asyncz.tasks.runs import RunRecord, Submission

UTC = timezone.utc


async def quick(value: int = 0) -> int:
    return value


async def fails() -> None:
    raise ValueError("boom")


class RecordingStore(MemoryStore):
    """Overrides add_runs: takes records only."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[Any]] = []

    async def add_runs(self, records: Sequence[RunRecord]) -> None:
        self.batches.append(list(records))
        await super().add_runs(records)


async def run_some(store: MemoryStore) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone=UTC, stores={"default": store})
    scheduler.start()
    due = datetime.now(UTC) + timedelta(seconds=0.05)
    for i in range(5):
        scheduler.add_task(quick, "date", run_at=due, args=[i], id=f"q{i}")
    scheduler.add_task(fails, "date", run_at=due, id="f")
    deadline = time.monotonic() + 10
    while scheduler.get_tasks():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    await scheduler._runs.flush()
    return scheduler


async def test_the_memory_store_builds_records_when_read() -> None:
    store = MemoryStore()
    scheduler = await run_some(store)
    try:
        ring = store._run_ring()
        assert len(ring) == 6
        assert all(type(item) is tuple for item in ring._records)  # nothing built yet
        runs = await scheduler.get_task_runs_async(limit=None)
        assert [type(r) for r in runs] == [RunRecord] * 6
        assert len({r.run_id for r in runs}) == 6
        assert all(type(item) is RunRecord for item in ring._records)
        (bad,) = await scheduler.get_task_runs_async("f")
        assert (bad.outcome, bad.error_type, bad.node) == (
            "error",
            "ValueError",
            scheduler.identity,
        )
        (ok,) = await scheduler.get_task_runs_async("q3")
        assert (ok.outcome, ok.return_repr, ok.attempt, ok.source) == (
            "success",
            "3",
            1,
            "scheduler",
        )
        assert ok.submitted_at is not None and ok.started_at is not None
        assert ok.finished_at is not None and ok.submitted_at <= ok.started_at <= ok.finished_at
        # Read again: the same records (built once, same run ids).
        assert await scheduler.get_task_runs_async(limit=None) == runs
    finally:
        scheduler.shutdown()


async def test_a_store_that_overrides_add_runs_gets_records() -> None:
    store = RecordingStore()
    scheduler = await run_some(store)
    try:
        got = [record for batch in store.batches for record in batch]
        assert len(got) == 6 and all(type(r) is RunRecord for r in got)
        assert {r.task_id for r in got} == {"q0", "q1", "q2", "q3", "q4", "f"}
        assert all(type(item) is RunRecord for item in store._run_ring()._records)
    finally:
        scheduler.shutdown()


def raw(task_id: str, end: float) -> tuple[Any, ...]:
    """The raw values the scheduler's recorder keeps (see RunKeeper._build)."""
    run_time = datetime.fromtimestamp(end - 1, UTC)
    return ("default", task_id, "default", run_time, "success", run_time, end - 1, end, 1)


def build(item: tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        item[1],
        f"{item[1]}-{item[7]:g}",
        item[3],
        item[4],
        finished_at=datetime.fromtimestamp(item[7], UTC),
    )


def test_the_ring_prunes_raw_items_without_building_them() -> None:
    ring = RunRing(size=100)
    now = datetime.now(UTC)
    t = now.timestamp()
    old = RunRecord("a", "a-old", now, "success", finished_at=now - timedelta(seconds=500))
    ring.add([old])
    ring.add_raw([raw("a", t - 400), raw("a", t - 30), raw("b", t - 20)], build)
    ring.add([RunRecord("a", "a-new", now, "missed", submitted_at=now - timedelta(seconds=10))])
    ring.add_raw([raw("a", t - 5)], build)
    dropped = ring.prune(now, max_age=300, max_per_task=2)
    assert dropped == 3  # two too old, one more than 2 of task a
    assert [type(i) for i in ring._records] == [tuple, RunRecord, tuple]  # still raw, in order
    assert [r.run_id for r in ring.get(None, None, None, None)] == [
        f"a-{t - 5:g}",
        "a-new",
        f"b-{t - 20:g}",
    ]


def test_the_ring_stays_bounded_with_raw_items() -> None:
    ring = RunRing(size=3)
    t = time.time()
    ring.add_raw([raw("a", t + i) for i in range(5)], build)
    assert len(ring) == 3
    assert [r.finished_at for r in ring.records()] == [
        datetime.fromtimestamp(t + i, UTC) for i in (2, 3, 4)
    ]


def test_a_submission_is_slotted_and_pickles() -> None:
    import pickle

    now = datetime.now(UTC)
    plain = Submission.of([now], now)
    assert (plain.attempt, plain.source, plain.submitted_at) == (1, "scheduler", now)
    assert not hasattr(plain, "__dict__")
    retry = Submission([now], now, "retry", 2)
    copy = pickle.loads(pickle.dumps(retry))
    assert type(copy) is Submission and copy == [now]
    assert (copy.attempt, copy.source, copy.submitted_at) == (2, "retry", now)


async def test_batches_stay_raw_until_read() -> None:
    store = MemoryStore()
    scheduler = await run_some(store)
    try:
        scheduler.add_task(quick, "date", run_at=datetime.now(UTC), id="later")
        deadline = time.monotonic() + 10
        while scheduler.get_tasks():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        await scheduler._runs.flush()  # a second batch from the same recorder
        assert [type(item) for item in store._run_ring()._records] == [tuple] * 7
    finally:
        scheduler.shutdown()
