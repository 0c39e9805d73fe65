"""RedisStore throughput against a private redis-server (started and stopped by this script).

Run: ``python benchmarks/bench_redis.py [--json] [--tasks 10000] [--burst 2000]``.

* adding ``--tasks`` tasks, in µs per task:
  - ``add_task`` per task on a scheduler that is not started yet, then ``start()`` (the
    pending tasks are committed in one round trip): the usual way an application adds
    its schedule;
  - ``add_task`` per task on a running scheduler (one confirmed round trip each, through
    the scheduler's portal thread and the store's I/O thread);
  - ``store.add_tasks`` bulk (one round trip);
* a burst of ``--burst`` due tasks: tasks/s from the moment they are due (the scheduler is
  started with them already in Redis) until every run has finished.

Goals on the 2-core development machine: <= 60 µs per add, >= 20,000 tasks/s for the burst.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

if __name__ == "__main__":  # the tasks below are stored as references to this module
    sys.modules.setdefault("bench_redis", sys.modules["__main__"])

import redis

from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores.base import call_sync
from asyncz.tasks import Task
from asyncz_redis import RedisStore

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


def start_server(directory: str) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", directory],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis(port=port).ping()
            return process, port
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def fresh_store(port: int, name: str) -> RedisStore:
    client = redis.Redis(port=port)
    client.delete(f"{name}.tasks", f"{name}.run_times")
    return RedisStore(
        host="127.0.0.1", port=port, tasks_key=f"{name}.tasks", run_times_key=f"{name}.run_times"
    )


def bench_pending_then_start(port: int, count: int) -> float:
    store = fresh_store(port, "pending")
    scheduler = AsyncIOScheduler(stores={"default": store})
    began = time.perf_counter()
    for i in range(count):
        scheduler.add_task(noop, "interval", hours=1, id=f"p{i}")
    scheduler.start(paused=True)
    elapsed = time.perf_counter() - began
    assert len(scheduler.get_tasks()) == count
    scheduler.remove_all_tasks()
    scheduler.shutdown()
    return elapsed / count * 1e6


def bench_running(port: int, count: int) -> float:
    store = fresh_store(port, "running")
    scheduler = AsyncIOScheduler(stores={"default": store})
    scheduler.start(paused=True)
    began = time.perf_counter()
    for i in range(count):
        scheduler.add_task(noop, "interval", hours=1, id=f"r{i}")
    elapsed = time.perf_counter() - began
    scheduler.remove_all_tasks()
    scheduler.shutdown()
    return elapsed / count * 1e6


def bench_bulk(port: int, count: int) -> float:
    store = fresh_store(port, "bulk")
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


def bench_burst(port: int, count: int) -> float:
    global _done, _target
    _done, _target = 0, count
    _all_done.clear()
    store = fresh_store(port, "burst")
    due = datetime.now(UTC)
    seed = RedisStore(host="127.0.0.1", port=port, tasks_key=store.tasks_key,
                      run_times_key=store.run_times_key)  # fmt: skip
    call_sync(seed, seed.start(AsyncIOScheduler(), "default"))
    tasks = [
        Task(hit, id=f"h{i}", trigger="date", run_at=due, next_run_time=due, coalesce=True,
             max_instances=1, misfire_grace_time=None)
        for i in range(count)
    ]  # fmt: skip
    call_sync(seed, seed.add_tasks(tasks))
    call_sync(seed, seed.shutdown())

    scheduler = AsyncIOScheduler(stores={"default": store})
    began = time.perf_counter()
    scheduler.start()
    if not _all_done.wait(60):
        raise RuntimeError(f"only {_done} of {count} tasks ran")
    elapsed = time.perf_counter() - began
    wait_empty = time.monotonic() + 10
    while scheduler.get_tasks() and time.monotonic() < wait_empty:
        time.sleep(0.01)
    left = len(scheduler.get_tasks())
    scheduler.shutdown()
    if left:
        raise RuntimeError(f"{left} finished tasks were not removed")
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--burst", type=int, default=2_000)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="asyncz-bench-redis-")
    process, port = start_server(directory)
    try:
        server = redis.Redis(port=port).info("server")["redis_version"]
        results: dict[str, Any] = {
            "redis_server": server,
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "tasks": options.tasks,
            "us_per_add_pending_then_start": bench_pending_then_start(port, options.tasks),
            "us_per_add_running": bench_running(port, options.tasks),
            "us_per_add_bulk": bench_bulk(port, options.tasks),
            "burst": options.burst,
            "burst_tasks_per_s": bench_burst(port, options.burst),
        }
    finally:
        process.terminate()
        process.wait()
        shutil.rmtree(directory, ignore_errors=True)
    if options.json:
        print(json.dumps(results, indent=2))
        return
    print(f"redis-server {results['redis_server']}, Python {results['python']}, "
          f"{results['cpus']} CPUs")  # fmt: skip
    n = results["tasks"]
    print(f"add {n:,} tasks, add_task each, then start():  "
          f"{results['us_per_add_pending_then_start']:8.1f} µs/add")  # fmt: skip
    print(f"add {n:,} tasks, add_task each, running:       "
          f"{results['us_per_add_running']:8.1f} µs/add")  # fmt: skip
    print(f"add {n:,} tasks, store.add_tasks bulk:         "
          f"{results['us_per_add_bulk']:8.1f} µs/add")  # fmt: skip
    print(f"burst of {results['burst']:,} due tasks, due -> all executed: "
          f"{results['burst_tasks_per_s']:10,.0f} tasks/s")  # fmt: skip
    asyncio.get_event_loop_policy()


if __name__ == "__main__":
    main()
