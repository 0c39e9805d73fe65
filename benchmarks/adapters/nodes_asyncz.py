"""asyncz (this tree, or an older checkout on ``PYTHONPATH``) as a node of
``benchmarks/bench_nodes.py``.

A ``NativeAsyncIOScheduler`` on the store (``RedisStore`` / ``SQLAlchemyStore`` with its
defaults), lease ``asyncz.coordination.lease``. A run is recorded from a ``TASK_EXECUTED``
listener (task id, scheduled run time, time of the event). The store's methods are wrapped
on the instance to tell the harness what the node claimed, and, with counting on, to count
the store calls and the backend round trips each of them makes (Redis: commands or
pipelines sent; SQL: statements, BEGIN and COMMIT seen by SQLAlchemy's engine events).
"""

from __future__ import annotations

import contextvars
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any

UTC = timezone.utc
HOOKS: Any = None

#: store methods counted (the ones a node calls while it runs)
METHODS = (
    "acquire_due_tasks", "release_tasks", "get_due_tasks", "update_tasks", "delete_tasks",
    "get_next_run_time", "heartbeat", "remove_node", "get_nodes", "lookup_task",
    "update_task", "get_all_tasks",
)  # fmt: skip

_current: contextvars.ContextVar[str] = contextvars.ContextVar("bench_store_call", default="-")
calls: Counter[str] = Counter()
trips: Counter[str] = Counter()


def version() -> str:
    from importlib.metadata import version as v

    return v("asyncz")


def make_store(kind: str, url: str) -> Any:
    if kind == "redis":
        from asyncz.stores.redis import RedisStore

        return RedisStore(url=url)
    from asyncz.stores.sqlalchemy import SQLAlchemyStore

    return SQLAlchemyStore(database=url)


def _scheduler(store: Any, identity: str, lease: float) -> Any:
    from asyncz.schedulers.asyncio import NativeAsyncIOScheduler

    options: dict[str, Any] = {"identity": identity}
    try:
        from asyncz.settings.models import CoordinationSettings  # noqa: F401
    except ImportError:  # an older tree (84fdcc2): no coordination settings
        pass
    else:
        options["coordination"] = {"lease": lease}
    return NativeAsyncIOScheduler(timezone=UTC, stores={"default": store}, **options)


async def load(kind: str, url: str, scenario: str, n: int, t0: float) -> None:
    """Add ``n`` tasks due at ``t0`` (burst: date; steady: interval 1 s), in one bulk write
    (tasks added before start are committed together), without processing them."""
    from adapters.jobs import anoop

    scheduler = _scheduler(make_store(kind, url), "loader", 10.0)
    due = datetime.fromtimestamp(t0, UTC)
    for i in range(n):
        if scenario == "burst":
            scheduler.add_task(anoop, "date", run_at=due, id=f"t{i}", misfire_grace_time=None)
        else:
            scheduler.add_task(
                anoop, "interval", seconds=1, start_at=due, id=f"t{i}",
                misfire_grace_time=None, coalesce=False,
            )  # fmt: skip
    await scheduler.start(paused=True)
    await scheduler.shutdown()


def _count_round_trips() -> None:
    """Count what goes to the server, by the store call it belongs to."""
    try:
        from redis.asyncio.connection import AbstractConnection
    except ImportError:
        pass
    else:
        send = AbstractConnection.send_packed_command

        async def counted_send(self: Any, *args: Any, **kwargs: Any) -> Any:
            trips[_current.get()] += 1
            return await send(self, *args, **kwargs)

        AbstractConnection.send_packed_command = counted_send  # type: ignore[method-assign]
    try:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine
    except ImportError:
        return

    def on_statement(*args: Any) -> None:
        trips[_current.get()] += 1

    def on_transaction(*args: Any) -> None:
        trips[_current.get()] += 1

    event.listen(Engine, "before_cursor_execute", on_statement)
    for name in ("begin", "commit", "rollback"):
        event.listen(Engine, name, on_transaction)


def _wrap(store: Any, name: str, count: bool) -> None:
    original = getattr(store, name, None)
    if original is None:
        return

    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        token = _current.set(name)
        try:
            result = await original(*args, **kwargs)
        finally:
            _current.reset(token)
        if count:
            calls[name] += 1
            if name in ("acquire_due_tasks", "get_due_tasks") and result:
                calls["batches_with_due_tasks"] += 1
        if name == "acquire_due_tasks" and result:
            HOOKS.claimed([(t.id, t.next_run_time.timestamp()) for t in result])
        return result

    setattr(store, name, wrapped)


async def node(kind: str, url: str, identity: str, lease: float, count: bool) -> None:
    from asyncz.events import TASK_EXECUTED

    store = make_store(kind, url)
    if count:
        _count_round_trips()
    for name in METHODS:
        _wrap(store, name, count)
    scheduler = _scheduler(store, identity, lease)
    record = HOOKS.record

    def on_executed(event: Any) -> None:
        record(event.task_id, event.scheduled_run_time.timestamp(), time.time())

    scheduler.add_listener(on_executed, TASK_EXECUTED)
    processor = getattr(scheduler, "_processor", None)  # passes, for the round-trip figures
    if count and processor is not None:
        process = processor.process

        async def counted_process() -> Any:
            calls["passes"] += 1
            return await process()

        processor.process = counted_process
    HOOKS.counters = lambda: {"calls": dict(calls), "round_trips": dict(trips)}
    HOOKS.extra["coordinated"] = bool(getattr(store, "coordinated", False))
    await scheduler.start()
    HOOKS.ready()
    await HOOKS.stopping.wait()
    HOOKS.stop_counting()
    await scheduler.shutdown()
