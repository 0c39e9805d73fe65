"""Listing a large RedisStore: ``get_tasks`` and ``get_task_infos`` read it page by page, so
that no single store call has to decode the whole store within ``store_timeout``."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from asyncz.abc import TaskPage
from asyncz.exceptions import TaskUnrestorableError
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores._listing import LIST_PAGE_SIZE
from asyncz.tasks import ScheduleState, Task
from asyncz.testing import functions
from asyncz_redis import RedisStore
from conftest import RedisServer

pytestmark = pytest.mark.redis


class BudgetedStore(RedisStore):
    """A RedisStore whose call times out when it decodes more than ``budget`` tasks: a
    stand-in, counted rather than timed, for a store so large that one call over all of it
    outlasts ``store_timeout``."""

    budget = 2 * LIST_PAGE_SIZE  # a page is about LIST_PAGE_SIZE (HSCAN's COUNT is a hint)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.decoded = 0
        self.per_call: list[int] = []

    def decode_task(self, task_id: str, payload: bytes) -> Task:
        self.decoded += 1
        return super().decode_task(task_id, payload)

    async def _budgeted(self, coro: Any) -> Any:
        self.decoded = 0
        result = await coro
        self.per_call.append(self.decoded)
        if self.decoded > self.budget:
            raise TimeoutError(f"one call decoded {self.decoded} tasks")
        return result

    async def get_all_tasks(self) -> list[Task]:
        return await self._budgeted(super().get_all_tasks())  # type: ignore[no-any-return]

    async def get_unrestorable(self) -> dict[str, str]:
        return await self._budgeted(super().get_unrestorable())  # type: ignore[no-any-return]

    async def get_task_page(self, cursor: str | None, limit: int) -> TaskPage:
        return await self._budgeted(super().get_task_page(cursor, limit))  # type: ignore[no-any-return]


def test_listing_a_large_store_is_paged_under_the_timeout(redis_server: RedisServer) -> None:
    count = 3 * LIST_PAGE_SIZE
    ns = f"t-{uuid.uuid4().hex[:10]}"
    store = BudgetedStore(
        host="127.0.0.1", port=redis_server.port, tasks_key=f"{ns}.tasks", run_times_key=f"{ns}.rt"
    )
    scheduler = AsyncIOScheduler(stores={"default": store}, isolated_event_loop=True)
    for i in range(count):
        seconds = 60 + i % 97
        scheduler.add_task(functions.noop, "interval", seconds=seconds, id=f"t{i:05d}")
    scheduler.add_task(functions.noop, "interval", hours=1, id="paused", next_run_time=None)
    scheduler.start(paused=True)
    try:
        with redis_server.client() as client:
            client.hset(f"{ns}.tasks", "t00007", b"not a payload")
        store.per_call.clear()

        infos = scheduler.get_task_infos()

        assert len(store.per_call) >= 3, "the store was read in pages"
        assert max(store.per_call) <= store.budget
        assert len(infos) == count + 1
        assert [i.id for i in infos if i.schedule_state is ScheduleState.UNRESTORABLE] == ["t00007"]
        listed = [i for i in infos if i.schedule_state is ScheduleState.SCHEDULED]
        assert len(listed) == count - 1
        assert listed == sorted(listed, key=lambda i: (i.next_run_time, i.id))
        assert infos[-2].id == "paused" or infos[-1].id == "paused"  # paused after scheduled

        store.per_call.clear()
        tasks = scheduler.get_tasks()
        assert len(tasks) == count
        assert tasks[-1].id == "paused"
        assert max(store.per_call) <= store.budget

        # Looking up one id decodes that task alone, absent or unrestorable.
        assert scheduler.get_task("absent") is None
        with pytest.raises(TaskUnrestorableError, match="t00007"):
            scheduler.pause_task("t00007")
    finally:
        scheduler.remove_all_tasks()
        scheduler.shutdown()
