"""A management write that another writer beat is read, changed and written again.

``update_task``, ``run_task`` and an operator's ``request_run`` write a task with a
compare-and-set; when the stored revision moved since the read (a node's pass, another
operator), the store refuses with :class:`~asyncz.exceptions.StaleTaskError`, and the write
is retried from the fresh state, 20 times at most. The store here is a real FileStore whose
next ``races`` writes lose: just before each, the task is rewritten on disk (its revision
moves), so the refusal is the store's own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from asyncz import events as ev
from asyncz.exceptions import StaleTaskError
from asyncz.operator import OperatorScheduler
from asyncz.schedulers.asyncio import NativeAsyncIOScheduler
from asyncz.stores.file import FileStore
from asyncz.tasks.task import Task
from asyncz.testing import functions


class RacingStore(FileStore):
    """A FileStore whose next ``races`` task writes are beaten by another writer."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, fsync=False, poll_interval=None)
        self.races = 0
        self.writes = 0

    async def update_task(self, task: Task) -> None:
        self.writes += 1
        if self.races:
            self.races -= 1
            stored = await self.lookup_task(task.id)
            assert stored is not None
            await self.update_tasks([stored])  # the other writer: the revision moves
        await super().update_task(task)


@pytest.fixture
async def scheduler(tmp_path: Path) -> NativeAsyncIOScheduler:
    store = RacingStore(tmp_path / "tasks")
    node = NativeAsyncIOScheduler(stores={"default": store})
    await node.start(paused=True)
    await node.add_task_async(functions.noop, "interval", hours=1, id="nightly")
    yield node  # type: ignore[misc]
    await node.shutdown()


def racing(scheduler: NativeAsyncIOScheduler, races: int) -> RacingStore:
    store = scheduler.lookup_store("default")
    assert isinstance(store, RacingStore)
    store.races = races
    return store


async def test_an_update_that_lost_is_retried_from_the_fresh_task(
    scheduler: NativeAsyncIOScheduler,
) -> None:
    store = racing(scheduler, 3)
    changed = await scheduler.update_task_async("nightly", name="renamed")
    assert changed.name == "renamed"
    assert store.writes == 4
    stored = await scheduler.get_task_async("nightly")
    assert stored is not None and stored.name == "renamed"


async def test_an_update_that_loses_twenty_times_raises_stale_task_error(
    scheduler: NativeAsyncIOScheduler,
) -> None:
    store = racing(scheduler, 20)
    with pytest.raises(StaleTaskError):
        await scheduler.update_task_async("nightly", name="renamed")
    assert store.writes == 20
    stored = await scheduler.get_task_async("nightly")
    assert stored is not None and stored.name != "renamed"


async def test_a_run_now_that_lost_runs_once(scheduler: NativeAsyncIOScheduler) -> None:
    submitted: list[ev.SchedulerEvent] = []
    scheduler.add_listener(submitted.append, ev.TASK_SUBMITTED)
    store = racing(scheduler, 2)
    task = await scheduler.run_task_async("nightly")
    assert task is not None and task.next_run_time is not None
    assert store.writes == 3
    assert len(submitted) == 1


async def test_a_run_request_that_lost_asks_for_one_run(tmp_path: Path) -> None:
    store = RacingStore(tmp_path / "tasks")
    operator = OperatorScheduler(stores={"default": store})
    await operator.start()
    try:
        await operator.add_task_async(functions.noop, "interval", hours=1, id="nightly")
        store.races = 2
        when = await operator.request_run_async("nightly")
        assert store.writes == 3
        stored = await operator.get_task_async("nightly")
        assert stored is not None
        assert [(p.run_time, p.source) for p in stored.pending_runs] == [(when, "manual")]
        store.races = 20
        with pytest.raises(StaleTaskError):
            await operator.request_run_async("nightly")
    finally:
        await operator.shutdown()
