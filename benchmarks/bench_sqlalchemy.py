"""SQLAlchemyStore throughput on a SQLite file and on a throw-away PostgreSQL cluster.

Run: ``python benchmarks/bench_sqlalchemy.py [--json] [--tasks 10000] [--burst 2000]
[--backend sqlite|postgresql|both]``. The PostgreSQL cluster is created with ``initdb`` in a
temporary directory, started with ``pg_ctl`` on a free port and removed at the end
(:class:`asyncz_sqlalchemy.testing.TemporaryPostgres`).

Per backend:

* adding ``--tasks`` tasks, in µs per task:
  - ``add_task`` per task on a scheduler that is not started yet, then ``start()`` (the
    pending tasks are committed in one transaction);
  - ``add_task`` per task on a running scheduler (one committed transaction each);
  - ``store.add_tasks`` bulk (one transaction);
* a burst of ``--burst`` due tasks: tasks/s from the moment the scheduler starts with them
  already stored and due, until every run has finished (date tasks: each is also deleted).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

if __name__ == "__main__":  # the tasks below are stored as references to this module
    sys.modules.setdefault("bench_sqlalchemy", sys.modules["__main__"])

import sqlalchemy

from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores.base import call_sync
from asyncz.tasks import Task
from asyncz_sqlalchemy import SQLAlchemyStore
from asyncz_sqlalchemy.testing import TemporaryPostgres

UTC = timezone.utc
_done = 0
_all_done = threading.Event()
_target = 0


def noop() -> None:
    pass


async def hit() -> None:
    global _done
    _done += 1
    if _done >= _target:
        _all_done.set()


Factory = Callable[[str], SQLAlchemyStore]


def fresh_store(make: Factory, name: str) -> SQLAlchemyStore:
    store = make(name)
    call_sync(store, store.start(AsyncIOScheduler(), "default"))
    call_sync(store, store.remove_all_tasks())
    call_sync(store, store.shutdown())
    return make(name)


def bench_pending_then_start(make: Factory, count: int) -> float:
    scheduler = AsyncIOScheduler(stores={"default": fresh_store(make, "pending")})
    began = time.perf_counter()
    for i in range(count):
        scheduler.add_task(noop, "interval", hours=1, id=f"p{i}")
    scheduler.start(paused=True)
    elapsed = time.perf_counter() - began
    assert len(scheduler.get_tasks()) == count
    scheduler.remove_all_tasks()
    scheduler.shutdown()
    return elapsed / count * 1e6


def bench_running(make: Factory, count: int) -> float:
    scheduler = AsyncIOScheduler(stores={"default": fresh_store(make, "running")})
    scheduler.start(paused=True)
    began = time.perf_counter()
    for i in range(count):
        scheduler.add_task(noop, "interval", hours=1, id=f"r{i}")
    elapsed = time.perf_counter() - began
    scheduler.remove_all_tasks()
    scheduler.shutdown()
    return elapsed / count * 1e6


def bench_bulk(make: Factory, count: int) -> float:
    store = fresh_store(make, "bulk")
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


def bench_burst(make: Factory, count: int) -> float:
    global _done, _target
    _done, _target = 0, count
    _all_done.clear()
    seed = fresh_store(make, "burst")
    call_sync(seed, seed.start(AsyncIOScheduler(), "default"))
    due = datetime.now(UTC)
    tasks = [
        Task(hit, id=f"h{i}", trigger="date", run_at=due, next_run_time=due, coalesce=True,
             max_instances=1, misfire_grace_time=None)
        for i in range(count)
    ]  # fmt: skip
    call_sync(seed, seed.add_tasks(tasks))
    call_sync(seed, seed.shutdown())

    scheduler = AsyncIOScheduler(stores={"default": make("burst")})
    began = time.perf_counter()
    scheduler.start()
    if not _all_done.wait(120):
        raise RuntimeError(f"only {_done} of {count} tasks ran")
    elapsed = time.perf_counter() - began
    wait_empty = time.monotonic() + 20
    while scheduler.get_tasks() and time.monotonic() < wait_empty:
        time.sleep(0.01)
    left = len(scheduler.get_tasks())
    scheduler.shutdown()
    if left:
        raise RuntimeError(f"{left} finished tasks were not removed")
    return count / elapsed


def run_backend(make: Factory, tasks: int, burst: int) -> dict[str, Any]:
    return {
        "us_per_add_pending_then_start": bench_pending_then_start(make, tasks),
        "us_per_add_running": bench_running(make, tasks),
        "us_per_add_bulk": bench_bulk(make, tasks),
        "burst_tasks_per_s": bench_burst(make, burst),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--burst", type=int, default=2_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    results: dict[str, Any] = {
        "python": sys.version.split()[0],
        "sqlalchemy": sqlalchemy.__version__,
        "cpus": os.cpu_count(),
        "tasks": options.tasks,
        "burst": options.burst,
    }
    if options.backend in ("sqlite", "both"):
        directory = tempfile.mkdtemp(prefix="asyncz-bench-sqlite-")
        url = f"sqlite:///{directory}/bench.db"
        try:
            results["sqlite"] = run_backend(
                lambda name: SQLAlchemyStore(url, tablename=name), options.tasks, options.burst
            )
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    if options.backend in ("postgresql", "both"):
        with TemporaryPostgres() as server:
            results["postgresql"] = run_backend(
                lambda name: SQLAlchemyStore(server.url, tablename=name),
                options.tasks,
                options.burst,
            )
    if options.json:
        print(json.dumps(results, indent=2))
        return
    print(f"Python {results['python']}, SQLAlchemy {results['sqlalchemy']}, {results['cpus']} CPUs")
    n = results["tasks"]
    for backend in ("sqlite", "postgresql"):
        if backend not in results:
            continue
        figures = results[backend]
        print(f"{backend}:")
        print(f"  add {n:,} tasks, add_task each, then start():  "
              f"{figures['us_per_add_pending_then_start']:8.1f} µs/add")  # fmt: skip
        print(f"  add {n:,} tasks, add_task each, running:       "
              f"{figures['us_per_add_running']:8.1f} µs/add")  # fmt: skip
        print(f"  add {n:,} tasks, store.add_tasks bulk:         "
              f"{figures['us_per_add_bulk']:8.1f} µs/add")  # fmt: skip
        print(f"  burst of {results['burst']:,} due tasks, start -> all executed: "
              f"{figures['burst_tasks_per_s']:10,.0f} tasks/s")  # fmt: skip


if __name__ == "__main__":
    main()
