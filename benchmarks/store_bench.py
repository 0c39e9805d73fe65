"""The measurements shared by the store benchmarks (bench_redis.py, bench_sqlalchemy.py;
the burst harness also by bench_redis_history.py and bench_sql_history.py).

Each takes ``make(name)``: a new, unstarted store of the backend under test whose tasks live
under ``name`` (a key prefix, a table), so that the measurements do not see each other's
tasks. The tasks stored are references to functions of this module.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores.base import BaseStore, call_sync
from asyncz.tasks import Task

UTC = timezone.utc
Factory = Callable[[str], BaseStore]

_done = 0
_target = 0
_all_done = threading.Event()


def noop() -> None:
    pass


async def hit() -> None:
    global _done
    _done += 1
    if _done >= _target:
        _all_done.set()


def fresh(make: Factory, name: str) -> BaseStore:
    """An empty store under ``name`` (whatever an earlier run left there is removed)."""
    store = make(name)
    call_sync(store, store.start(AsyncIOScheduler(), "default"))
    call_sync(store, store.remove_all_tasks())
    call_sync(store, store.shutdown())
    return make(name)


def pending_then_start(make: Factory, count: int) -> float:
    """µs per task: add_task on a stopped scheduler, then start() commits them in bulk."""
    scheduler = AsyncIOScheduler(stores={"default": fresh(make, "pending")})
    began = time.perf_counter()
    for i in range(count):
        scheduler.add_task(noop, "interval", hours=1, id=f"p{i}")
    scheduler.start(paused=True)
    elapsed = time.perf_counter() - began
    assert len(scheduler.get_tasks()) == count
    scheduler.remove_all_tasks()
    scheduler.shutdown()
    return elapsed / count * 1e6


def running(make: Factory, count: int) -> float:
    """µs per task: add_task, one confirmed write each, on a running scheduler."""
    scheduler = AsyncIOScheduler(stores={"default": fresh(make, "running")})
    scheduler.start(paused=True)
    began = time.perf_counter()
    for i in range(count):
        scheduler.add_task(noop, "interval", hours=1, id=f"r{i}")
    elapsed = time.perf_counter() - began
    scheduler.remove_all_tasks()
    scheduler.shutdown()
    return elapsed / count * 1e6


def bulk(make: Factory, count: int) -> float:
    """µs per task: building the tasks and one ``store.add_tasks`` call."""
    store = fresh(make, "bulk")
    call_sync(store, store.start(AsyncIOScheduler(), "default"))
    when = datetime.now(UTC) + timedelta(hours=1)
    began = time.perf_counter()
    tasks = [
        Task(noop, id=f"b{i}", trigger="interval", hours=1, next_run_time=when, coalesce=True,
             max_instances=1, misfire_grace_time=1.0)
        for i in range(count)
    ]  # fmt: skip
    call_sync(store, store.add_tasks(tasks))
    elapsed = time.perf_counter() - began
    call_sync(store, store.remove_all_tasks())
    call_sync(store, store.shutdown())
    return elapsed / count * 1e6


def seed_due(store: BaseStore, count: int) -> None:
    """Store ``count`` date tasks that call :func:`hit`, all due now, with ``store`` (a new,
    unstarted one: started and shut down here), and arm the counter that :func:`drain`
    waits on. The burst harness of this module and of bench_{redis,sql}_history.py."""
    global _done, _target
    _done, _target = 0, count
    _all_done.clear()
    call_sync(store, store.start(AsyncIOScheduler(), "default"))
    due = datetime.now(UTC)
    tasks = [
        Task(hit, id=f"h{i}", trigger="date", run_at=due, next_run_time=due, coalesce=True,
             max_instances=1, misfire_grace_time=None)
        for i in range(count)
    ]  # fmt: skip
    call_sync(store, store.add_tasks(tasks))
    call_sync(store, store.shutdown())


def drain(
    scheduler: AsyncIOScheduler, timeout: float = 120, *, resume: bool = False
) -> tuple[float, int]:
    """Start the scheduler (``resume``: resume it, started paused) on the tasks of
    :func:`seed_due`, wait until every run has finished and the finished tasks are removed
    (20 s at most), and shut it down. Returns the seconds from the start to the last run,
    and how many tasks were left in the store."""
    began = time.perf_counter()
    if resume:
        scheduler.resume()
    else:
        scheduler.start()
    if not _all_done.wait(timeout):
        raise RuntimeError(f"only {_done} of {_target} tasks ran")
    elapsed = time.perf_counter() - began
    wait_empty = time.monotonic() + 20
    while (left := len(scheduler.get_tasks())) and time.monotonic() < wait_empty:
        time.sleep(0.01)
    scheduler.shutdown()
    return elapsed, left


def burst(make: Factory, count: int, timeout: float = 120) -> float:
    """tasks/s: ``count`` date tasks already stored and due when the scheduler starts,
    until every run has finished (and every finished task was removed)."""
    seed_due(fresh(make, "burst"), count)
    elapsed, left = drain(AsyncIOScheduler(stores={"default": make("burst")}), timeout)
    if left:
        raise RuntimeError(f"{left} finished tasks were not removed")
    return count / elapsed


def run_all(make: Factory, tasks: int, burst_size: int) -> dict[str, Any]:
    return {
        "us_per_add_pending_then_start": pending_then_start(make, tasks),
        "us_per_add_running": running(make, tasks),
        "us_per_add_bulk": bulk(make, tasks),
        "burst_tasks_per_s": burst(make, burst_size),
    }


def report(figures: dict[str, Any], tasks: int, burst_size: int, indent: str = "") -> None:
    print(f"{indent}add {tasks:,} tasks, add_task each, then start():  "
          f"{figures['us_per_add_pending_then_start']:8.1f} µs/add")  # fmt: skip
    print(f"{indent}add {tasks:,} tasks, add_task each, running:       "
          f"{figures['us_per_add_running']:8.1f} µs/add")  # fmt: skip
    print(f"{indent}add {tasks:,} tasks, store.add_tasks bulk:         "
          f"{figures['us_per_add_bulk']:8.1f} µs/add")  # fmt: skip
    print(f"{indent}burst of {burst_size:,} due tasks, start -> all executed: "
          f"{figures['burst_tasks_per_s']:10,.0f} tasks/s")  # fmt: skip
