"""MongoDBStore throughput against a real wire-protocol server.

Starts its own mongoeco server (``scripts/setup-mongoeco``, Python >= 3.13; in-memory engine)
on a free port, or uses ``ASYNCZ_TEST_MONGO_URL``. mongoeco is a Python emulation whose
inserts get slower as a collection grows; against it the figures measure mostly the server. Measures:

* adding N tasks (10,000) one by one through the scheduler's ``add_task`` (µs per add);
* adding N tasks in one ``store.add_tasks`` bulk write (µs per task);
* a burst of B (2,000) tasks due at once: tasks per second from the due instant until every
  run was executed and the finished tasks removed, with the server commands it took (count
  and server time per kind, as PyMongo's command monitoring sees them).

``--sqlite`` runs mongoeco on its SQLite engine, as ``benchmarks/run.py`` does (several times
slower per write than the in-memory engine).

Run: ``python benchmarks/bench_mongo.py [--json] [--sqlite] [--tasks N] [--burst B]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import threading
import time
import uuid
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pymongo import monitoring

from asyncz import events as ev
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores.base import call
from asyncz.testing import functions, make_task
from asyncz_mongo import MongoDBStore
from asyncz_mongo.testing import TemporaryMongoeco

ROOT = Path(__file__).resolve().parents[1]


def server_url(sqlite: bool = False) -> tuple[str, TemporaryMongoeco | None]:
    url = os.environ.get("ASYNCZ_TEST_MONGO_URL")
    if url:
        return url, None
    python = subprocess.run(
        [str(ROOT / "scripts" / "setup-mongoeco")], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    # In memory by default: mongoeco's SQLite engine is several times slower, and
    # persistence is not what is measured here.
    server = TemporaryMongoeco(python, persistent=sqlite)
    server.start()
    return server.url, server


class CommandTally(monitoring.CommandListener):
    """Server commands by name: how many, and the server time they took (µs)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)
        self.micros: dict[str, int] = defaultdict(int)
        self.active = False

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if self.active:
            self.counts[event.command_name] += 1
            self.micros[event.command_name] += event.duration_micros

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self.succeeded(event)  # type: ignore[arg-type]

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            name: {"count": count, "server_ms": self.micros[name] / 1000}
            for name, count in sorted(self.counts.items())
        }


def make_store(url: str, **options: Any) -> MongoDBStore:
    # mongoeco answers nothing while it digests a large bulk write: a long connect timeout
    # keeps PyMongo's monitor from declaring it down (and cancelling the write) meanwhile.
    return MongoDBStore(
        database="asyncz_bench",
        collection=uuid.uuid4().hex[:12],
        url=url,
        connectTimeoutMS=600_000,
        socketTimeoutMS=600_000,
        **options,
    )


def bench_scheduler_adds(url: str, count: int) -> float:
    scheduler = AsyncIOScheduler(stores={"default": make_store(url)}, isolated_event_loop=True)
    scheduler.start(paused=True)
    try:
        started = time.perf_counter()
        for i in range(count):
            scheduler.add_task(functions.noop, "interval", hours=1, id=f"a{i}")
        elapsed = time.perf_counter() - started
        assert len(scheduler.get_tasks()) == count
        scheduler.remove_all_tasks()
    finally:
        scheduler.shutdown()
    return elapsed / count * 1e6


def bench_bulk_adds(url: str, count: int) -> float:
    store = make_store(url)
    host = AsyncIOScheduler()
    tasks = [make_task(f"b{i}", datetime(2030, 1, 1, tzinfo=timezone.utc)) for i in range(count)]

    async def run() -> float:
        await call(store, store.start(host, "default"))
        try:
            await call(store, store.add_tasks(tasks[:1]))  # connect and index first
            await call(store, store.remove_all_tasks())
            started = time.perf_counter()
            await call(store, store.add_tasks(tasks))
            elapsed = time.perf_counter() - started
            assert len(await call(store, store.get_all_tasks())) == count
            await call(store, store.remove_all_tasks())
            return elapsed
        finally:
            await call(store, store.shutdown())

    return asyncio.run(run()) / count * 1e6


def bench_burst(url: str, count: int, tally: CommandTally) -> float:
    store = make_store(url, event_listeners=[tally])
    scheduler = AsyncIOScheduler(stores={"default": store}, isolated_event_loop=True)
    done = threading.Event()
    executed = 0

    def on_executed(event: Any) -> None:
        nonlocal executed
        executed += 1
        if executed == count:
            done.set()

    scheduler.add_listener(on_executed, ev.TASK_EXECUTED)
    scheduler.start(paused=True)
    try:
        due = datetime.now(timezone.utc) + timedelta(seconds=1)
        tasks = [
            make_task(f"d{i}", due, trigger="date", run_at=due, misfire_grace_time=None)
            for i in range(count)
        ]
        scheduler._block_on(call(store, store.add_tasks(tasks)))
        wait = (due - datetime.now(timezone.utc)).total_seconds()
        if wait > 0:
            time.sleep(wait)
        started = time.perf_counter()
        tally.active = True
        scheduler.resume()
        if not done.wait(300):
            raise RuntimeError(f"only {executed} of {count} runs executed")
        tally.active = False
        while scheduler.get_tasks():  # finished tasks removed from the store too
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
    finally:
        scheduler.shutdown()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--sqlite", action="store_true", help="mongoeco's SQLite engine")
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--burst", type=int, default=2_000)
    args = parser.parse_args()
    url, server = server_url(args.sqlite)
    tally = CommandTally()
    try:
        results: dict[str, Any] = {
            "server": server.version if server else url,
            "scheduler_add_us_per_task": bench_scheduler_adds(url, args.tasks),
            "bulk_add_us_per_task": bench_bulk_adds(url, args.tasks),
            "burst_tasks_per_second": bench_burst(url, args.burst, tally),
            "burst_commands": tally.summary(),
        }
    finally:
        if server is not None:
            server.close()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"server: {results['server']} ({url})")
    n, b = args.tasks, args.burst
    print(f"add {n} tasks, scheduler.add_task: {results['scheduler_add_us_per_task']:.0f} µs/task")
    print(f"add {n} tasks, store.add_tasks (bulk): {results['bulk_add_us_per_task']:.1f} µs/task")
    print(f"burst of {b} due tasks: {results['burst_tasks_per_second']:.0f} tasks/s")
    for name, figures in results["burst_commands"].items():
        print(f"  {name:>10}: {figures['count']:4.0f} commands, {figures['server_ms']:8.1f} ms")


if __name__ == "__main__":
    main()
