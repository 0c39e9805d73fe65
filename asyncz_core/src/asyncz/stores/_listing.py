"""Listing every task of a store, page by page.

Data path: ``get_tasks`` / ``get_task_infos`` / the shutdown pass -> :func:`list_store` ->
``store.get_task_page(cursor, LIST_PAGE_SIZE)`` through :func:`~asyncz.stores.base.call`,
once per page, each page its own call under ``store_timeout`` -> the tasks ordered by next
run time (paused last), and the store's unrestorable tasks.

One call for a whole store of 100,000 tasks would outlast any sensible ``store_timeout``
(decoding alone takes seconds); a page of :data:`LIST_PAGE_SIZE` takes milliseconds.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from asyncz.abc import TaskPage
from asyncz.stores.base import call

if TYPE_CHECKING:
    from asyncz.stores.base import BaseStore
    from asyncz.tasks import Task

__all__ = ["LIST_PAGE_SIZE", "list_store"]

#: Tasks a listing asks a store for per call (:meth:`asyncz.abc.Store.get_task_page`).
LIST_PAGE_SIZE = 1000

_NEVER = datetime.max.replace(tzinfo=timezone.utc)


def _run_time_order(task: Task) -> datetime:
    when = task.next_run_time
    return when if isinstance(when, datetime) else _NEVER


async def list_store(store: BaseStore, page_size: int = LIST_PAGE_SIZE) -> TaskPage:
    """Every task of ``store`` by next run time, paused ones last (ties: in the store's order
    when it answered in one page, else by id), and its unrestorable tasks (``cursor`` is
    ``None``). A task that two pages hold is kept once, as the later page had it."""
    page = await call(store, store.get_task_page(None, page_size))
    found = {task.id: task for task in page.tasks}
    broken = dict(page.unrestorable)
    paged = page.cursor is not None
    while page.cursor is not None:
        page = await call(store, store.get_task_page(page.cursor, page_size))
        found.update((task.id, task) for task in page.tasks)
        broken.update(page.unrestorable)
    tasks = list(found.values())
    if paged:
        tasks.sort(key=_task_id)
    tasks.sort(key=_run_time_order)  # stable: ties keep the order above
    return TaskPage(tasks, broken, None)


def _task_id(task: Task) -> str:
    return task.id
