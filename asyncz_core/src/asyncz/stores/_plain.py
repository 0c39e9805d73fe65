"""Stores written with plain synchronous methods (as custom stores for Asyncz are).

Data path: :meth:`asyncz.stores.base.BaseStore.__init_subclass__` replaces each plain method
of the contract (:data:`CONTRACT`) by :func:`run_sync_method`, which returns a coroutine that
:func:`asyncz.stores.base.call` runs on the store's worker thread (:func:`worker_loop`, its
``io_loop``); the tasks it returns are bound there. :func:`stopping_worker` stops that thread
after ``shutdown()``. ``get_due_tasks(now)`` without ``limit`` gets one (:func:`add_limit`).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asyncz.stores.base import BaseStore, LoopThread

__all__ = [
    "CONTRACT",
    "add_limit",
    "run_sync_method",
    "stopping_worker",
    "takes_limit",
    "worker_loop",
]


def _base_start(store: BaseStore, *args: Any, **kwargs: Any) -> None:
    from asyncz.stores.base import BaseStore

    BaseStore.start(store, *args, **kwargs)


#: The methods of the store contract, which a store may write as plain functions.
CONTRACT = (
    "lookup_task",
    "get_due_tasks",
    "get_next_run_time",
    "get_all_tasks",
    "add_task",
    "update_task",
    "delete_task",
    "remove_all_tasks",
    "get_unrestorable",
    "add_tasks",
    "update_tasks",
    "delete_tasks",
    "start",
    "shutdown",
)
_worker_lock = threading.Lock()
#: Set while a plain store method runs: calls it makes to other plain methods stay plain.
_in_plain_method: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "asyncz_in_plain_store_method", default=False
)


def takes_limit(fn: Callable[..., Any]) -> bool:
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return True
    positional = [
        p for p in parameters[1:] if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return len(positional) >= 2 or any(
        p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name == "limit" for p in parameters
    )


def add_limit(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """``get_due_tasks(now)`` made to take ``limit`` (Asyncz's stores have none)."""

    @functools.wraps(fn)
    async def get_due_tasks(self: BaseStore, now: datetime, limit: int | None = None) -> Any:
        due = list(await fn(self, now) or ())
        return due if limit is None else due[:limit]

    return get_due_tasks


def run_sync_method(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """The method that replaces the plain method ``fn`` of a store.

    Called by the scheduler it returns a coroutine, which :func:`call` runs on the store's
    ``io_loop``: the worker thread. There, tasks ``fn`` returns are bound to the store
    (Asyncz's stores leave that to the scheduler), and ``None`` from a method that returns a
    list becomes ``[]``. Called from another plain method of the store (``self.lookup_task``
    or ``super().add_task(...)`` inside ``add_task``) it is ``fn`` itself, plain.
    """
    no_limit = name == "get_due_tasks" and not takes_limit(fn)
    returns_list = name in ("get_due_tasks", "get_all_tasks")

    async def run(self: BaseStore, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        limit = None
        if no_limit:
            limit = kwargs.pop("limit", args[1] if len(args) > 1 else None)
            args = args[:1]
        elif name == "start":
            _base_start(self, *args, **kwargs)  # scheduler and alias, whatever fn does
        token = _in_plain_method.set(True)
        try:
            result = fn(self, *args, **kwargs)
        finally:
            _in_plain_method.reset(token)
        if inspect.isawaitable(result):  # e.g. ``return super().shutdown()``
            result = await result
        if returns_list:
            result = [self._bind(task) for task in result or ()]
            if limit is not None:
                del result[limit:]
        elif name == "lookup_task" and result is not None:
            result = self._bind(result)
        elif name == "get_unrestorable":
            result = dict(result or {})
        return result

    @functools.wraps(fn)
    def method(self: BaseStore, *args: Any, **kwargs: Any) -> Any:
        if _in_plain_method.get():
            return fn(self, *args, **kwargs)
        return run(self, args, kwargs)

    method.__asyncz_sync__ = fn  # type: ignore[attr-defined]
    return method


def worker_loop(self: BaseStore) -> asyncio.AbstractEventLoop:
    """``io_loop`` of a store with synchronous methods: a thread of its own, started on
    first use and stopped by ``shutdown()``."""
    with _worker_lock:
        worker: LoopThread | None = self.__dict__.get("_asyncz_worker")
        if worker is None:
            from asyncz.stores.base import LoopThread

            worker = LoopThread(f"asyncz-store-{self.alias or type(self).__name__}")
            self.__dict__["_asyncz_worker"] = worker
        return worker.start()


def stopping_worker(shutdown: Callable[..., Any]) -> Callable[..., Any]:
    """``shutdown`` followed by stopping the store's worker thread."""

    async def shutdown_then_stop(self: BaseStore) -> None:
        try:
            result = shutdown(self)
            if inspect.isawaitable(result):
                await result
        finally:
            with _worker_lock:
                worker: LoopThread | None = self.__dict__.pop("_asyncz_worker", None)
            if worker is not None:
                # From the worker itself: its loop stops once this coroutine has returned.
                worker.stop()

    @functools.wraps(shutdown)
    def stop_after(self: BaseStore) -> Any:
        if _in_plain_method.get():  # ``super().shutdown()`` in a plain shutdown
            return shutdown(self)
        return shutdown_then_stop(self)

    stop_after.__asyncz_stops_worker__ = True  # type: ignore[attr-defined]
    return stop_after
