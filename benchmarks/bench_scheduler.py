"""Scheduler benchmarks on the memory store (no server needed).

    python benchmarks/bench_scheduler.py [scenario ...] [--json]

Scenarios: add (N = 1k, 10k, 100k interval tasks: µs per add, bytes per task), burst (10,000
date tasks due at one instant: due -> first run, due -> all done, tasks/s, and the same
process's bare-asyncio rate for 10,000 trivial tasks), lateness (1,000 tasks every 1 s for
10 s: p50/p99/max), idle (CPU seconds per wall second with 10,000 tasks far ahead).
Each figure is measured in a fresh process by the runner (benchmarks/run.py); run alone, this
script measures once per scenario.
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import sys
import time
import tracemalloc
from datetime import datetime, timedelta, timezone

from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.triggers import DateTrigger, IntervalTrigger

UTC = timezone.utc


def noop() -> None:
    pass


async def anoop() -> None:
    pass


async def bench_add(n: int) -> dict[str, float]:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start()
    try:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        start = time.perf_counter()
        for _ in range(n):
            scheduler.add_task(anoop, IntervalTrigger(hours=1))
        elapsed = time.perf_counter() - start
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        assert len(scheduler.stores["default"]) == n  # type: ignore[arg-type]
    finally:
        scheduler.shutdown(wait=False)
    return {"n": n, "us_per_add": elapsed / n * 1e6, "bytes_per_task": (after - before) / n}


async def bare_asyncio_rate(n: int) -> float:
    done = 0

    async def work() -> None:
        nonlocal done
        done += 1

    start = time.perf_counter()
    tasks = [asyncio.get_running_loop().create_task(work()) for _ in range(n)]
    await asyncio.gather(*tasks)
    return n / (time.perf_counter() - start)


async def bench_burst(n: int = 10_000) -> dict[str, float]:
    finished = 0
    first: float | None = None
    last = 0.0
    all_done = asyncio.Event()

    async def job() -> None:
        nonlocal finished, first, last
        now = time.perf_counter()
        if first is None:
            first = now
        finished += 1
        if finished == n:
            last = now
            all_done.set()

    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start()
    try:
        due_wall = datetime.now(UTC) + timedelta(seconds=1.0)
        for _ in range(n):
            scheduler.add_task(job, DateTrigger(due_wall))
        delay = (due_wall - datetime.now(UTC)).total_seconds()
        due_perf = time.perf_counter() + delay
        await asyncio.wait_for(all_done.wait(), 60)
    finally:
        scheduler.shutdown(wait=False)
    assert first is not None
    rate = n / (last - due_perf)
    baseline = await bare_asyncio_rate(n)
    return {
        "n": n,
        "due_to_first_ms": (first - due_perf) * 1000,
        "due_to_all_ms": (last - due_perf) * 1000,
        "tasks_per_s": rate,
        "bare_asyncio_tasks_per_s": baseline,
        "ratio_to_bare": rate / baseline,
    }


async def bench_lateness(n: int = 1000, seconds: float = 10.0) -> dict[str, float]:
    lateness: list[float] = []
    scheduler = AsyncIOScheduler(timezone=UTC)

    async def job(task_id: int) -> None:
        now = datetime.now(UTC)
        # the scheduled time is the grid point closest below now
        lateness.append((now - scheduled[task_id]).total_seconds() % 1.0)

    start = datetime.now(UTC) + timedelta(seconds=0.5)
    scheduled: dict[int, datetime] = {}
    scheduler.start()
    try:
        for i in range(n):
            at = start + timedelta(microseconds=i * 997)  # spread over the second
            scheduled[i] = at
            scheduler.add_task(
                job, IntervalTrigger(seconds=1, start_at=at), args=[i], max_instances=2
            )
        await asyncio.sleep(seconds + 0.6)
    finally:
        scheduler.shutdown(wait=False)
    ordered = sorted(lateness)
    return {
        "runs": len(ordered),
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000,
        "max_ms": ordered[-1] * 1000,
    }


async def bench_idle(n: int = 10_000, seconds: float = 5.0) -> dict[str, float]:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start()
    try:
        far = datetime.now(UTC) + timedelta(days=30)
        for _ in range(n):
            scheduler.add_task(noop, DateTrigger(far))
        await asyncio.sleep(0.5)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - wall0
    finally:
        scheduler.shutdown(wait=False)
    return {"tasks": n, "cpu_s_per_s": cpu / wall}


SCENARIOS = {
    "add-1k": lambda: bench_add(1_000),
    "add-10k": lambda: bench_add(10_000),
    "add-100k": lambda: bench_add(100_000),
    "burst": bench_burst,
    "lateness": bench_lateness,
    "idle": bench_idle,
}


def main(argv: list[str]) -> None:
    names = [a for a in argv if not a.startswith("--")] or list(SCENARIOS)
    results = {}
    for name in names:
        results[name] = asyncio.run(SCENARIOS[name]())
        if "--json" not in argv:
            print(name, json.dumps(results[name]))
    if "--json" in argv:
        print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
