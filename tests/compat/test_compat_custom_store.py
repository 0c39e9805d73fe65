"""A custom store written for Asyncz: plain synchronous methods, get_due_tasks(now)."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime
from typing import Any

from compat_helpers import wait_until

from asyncz.exceptions import ConflictingIdError, TaskLookupError
from asyncz.schedulers import AsyncIOScheduler
from asyncz.stores.base import BaseStore
from asyncz.tasks.types import TaskType


class DictStore(BaseStore):
    """The shape of Asyncz's custom-store example, filled in."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tasks: dict[str, TaskType] = {}
        self.threads: set[int] = set()
        self.started = self.stopped = 0

    def start(self, scheduler: Any, alias: str) -> None:
        super().start(scheduler, alias)
        self.started += 1

    def shutdown(self) -> None:
        self.stopped += 1
        super().shutdown()

    def _sorted(self) -> list[TaskType]:
        self.threads.add(threading.get_ident())
        return sorted(
            self.tasks.values(),
            key=lambda t: (t.next_run_time is None, t.next_run_time or datetime.min),
        )

    def get_due_tasks(self, now: datetime) -> list[TaskType]:
        return [t for t in self._sorted() if t.next_run_time and t.next_run_time <= now]

    def lookup_task(self, task_id: str) -> TaskType | None:
        return self.tasks.get(task_id)

    def delete_task(self, task_id: str) -> None:
        if task_id not in self.tasks:
            raise TaskLookupError(task_id)
        del self.tasks[task_id]

    def remove_all_tasks(self) -> None:
        self.tasks.clear()

    def get_next_run_time(self) -> datetime | None:
        due = [t.next_run_time for t in self._sorted() if t.next_run_time]
        return due[0] if due else None

    def get_all_tasks(self) -> list[TaskType]:
        return self._sorted()

    def add_task(self, task: TaskType) -> None:
        if task.id in self.tasks:
            raise ConflictingIdError(task.id)
        self.tasks[task.id] = task

    def update_task(self, task: TaskType) -> None:
        if self.lookup_task(task.id) is None:  # a plain method calling another one
            raise TaskLookupError(task.id)
        self.tasks[task.id] = task


ran: list[str] = []


def job(name: str) -> None:
    ran.append(name)


async def test_a_synchronous_store_runs_tasks_off_the_scheduler_loop() -> None:
    ran.clear()
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_store(DictStore, "custom")  # a class, as in Asyncz's example
    store = scheduler.stores["custom"]
    assert isinstance(store, DictStore)
    scheduler.add_task(job, "interval", seconds=0.05, args=["tick"], id="tick", store="custom")
    loop_thread = threading.get_ident()
    async with scheduler:
        await wait_until(lambda: ran.count("tick") >= 2)
        # The synchronous management API works on it, from the loop's own thread too.
        assert scheduler.get_task("tick").store_alias == "custom"  # type: ignore[union-attr]
        scheduler.pause_task("tick")
        assert store.tasks["tick"].next_run_time is None
        scheduler.resume_task("tick")
        scheduler.add_task(job, "date", args=["once"], id="once", store="custom")
        await wait_until(lambda: "once" in ran)
        assert "once" not in store.tasks  # finished one-off task removed
        assert [t.id for t in await scheduler.get_tasks_async("custom")] == ["tick"]
        scheduler.delete_task("tick")
        assert store.tasks == {}
    assert store.started == 1 and store.stopped == 1
    assert store.threads and loop_thread not in store.threads
    # The worker thread ends once its loop has stopped (just after shutdown returned).
    await wait_until(
        lambda: not [t for t in threading.enumerate() if t.name.startswith("asyncz-store-")]
    )


def test_a_synchronous_store_restarts_and_gets_a_fresh_worker() -> None:
    ran.clear()
    store = DictStore()
    scheduler = AsyncIOScheduler(timezone="UTC", stores={"default": store})
    for round_ in range(2):
        scheduler.add_task(job, "date", args=[f"r{round_}"])
        scheduler.start()
        asyncio.run(wait_until(lambda r=round_: f"r{r}" in ran))  # type: ignore[misc]
        scheduler.shutdown()
    assert store.started == 2 and store.stopped == 2


class AsyncStoreWithoutLimit(DictStore):
    """An async store whose get_due_tasks takes no limit: the scheduler slices."""

    async def get_due_tasks(self, now: datetime) -> list[TaskType]:  # type: ignore[override]
        return [t for t in self._sorted() if t.next_run_time and t.next_run_time <= now]


async def test_get_due_tasks_without_limit_is_sliced_to_the_limit() -> None:
    store = AsyncStoreWithoutLimit()
    scheduler = AsyncIOScheduler(timezone="UTC", stores={"default": store})
    with scheduler:
        for i in range(5):
            scheduler.add_task(job, "interval", hours=1, args=[i], id=f"t{i}", next_run_time=None)
        for task in store.tasks.values():
            task.next_run_time = datetime(2000, 1, 1).astimezone()
        due = await store.get_due_tasks(datetime.now().astimezone(), 3)
        assert [t.id for t in due] == ["t0", "t1", "t2"]
        assert len(await store.get_due_tasks(datetime.now().astimezone())) == 5
