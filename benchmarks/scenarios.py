"""One benchmark scenario, measured once, in this process, on one scheduler library (asyncz, Asyncz 0.17.2,
APScheduler 3.11.3, APScheduler 4.0.0a6).

    python benchmarks/scenarios.py --lib asyncz --scenario add --n 100000 --json

The runner (``benchmarks/run.py``) starts one such process per library x scenario x repeat,
with the interpreter of the library's own virtual environment, and aggregates the JSON line
each prints. The scenario code is the same for every library: it only calls the adapter
(``benchmarks/adapters``), which maps each operation to the library's API.

Scenarios (``--n`` overrides the default size):

* ``add``        N interval(hours=1) tasks added one by one to a started scheduler: µs/add.
* ``add-mem``    the same under tracemalloc (a separate run, as tracing slows adding): bytes
                 per task.
* ``burst``      N (10,000) date tasks due at one instant T: T -> first run, T -> last run,
                 tasks/s, and the bare-asyncio rate (creating and awaiting N trivial tasks)
                 measured afterwards in the same process (best of 3), as a ratio.
* ``lateness``   N (1,000) interval(1 s) tasks spread over the second, for ``--seconds`` (10):
                 p50/p99/max of run time minus scheduled time, and the process CPU seconds
                 of that window; then N bare ``call_later`` timers as the floor, same length.
* ``idle``       N (10,000) tasks scheduled 30 days ahead: CPU seconds per wall second.
* ``cron``       next-fire time of three cron triggers, called the way a scheduler calls it:
                 µs/call.
* ``store-add``  N (5,000) interval tasks added to a started scheduler whose default store is
                 ``--store`` (redis, mongodb, sqlite, postgresql) at ``--url``: µs/add.
* ``store-burst``N (2,000) date tasks in that store, due at once: from the due instant (the
                 scheduler resumes) to the last run: tasks/s.
* ``store-list`` N (10,000) tasks in that store, then the library's listing call (asyncz:
                 ``get_task_infos()``): seconds, best of 3.
* ``footprint``  import time of the library's asyncio scheduler module, resident memory of
                 a started scheduler without tasks, its idle CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import inspect
import json
import os
import statistics
import sys
import time
import tracemalloc
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from adapters import MODULES, Adapter, jobs, load

UTC = timezone.utc

CRON_CASES: dict[str, dict[str, Any]] = {
    "mon-fri 9-17 */15 (Europe/Paris)": {
        "fields": {"day_of_week": "mon-fri", "hour": "9-17", "minute": "*/15"},
        "timezone": "Europe/Paris",
    },
    "*/5 * * * * (America/New_York)": {"crontab": "*/5 * * * *", "timezone": "America/New_York"},
    "*/5 * * * * (UTC)": {"crontab": "*/5 * * * *", "timezone": "UTC"},
}


async def _a(value: Any) -> Any:
    """The value, awaited when the library's adapter is asynchronous (APScheduler 4)."""
    return await value if inspect.isawaitable(value) else value


async def _add_many(lib: Adapter, scheduler: Any, n: int, fn: Any) -> float:
    """n interval(hours=1) tasks one by one; the seconds it took (sync or async API)."""
    add_interval = lib.add_interval
    if lib.is_async:
        start = time.perf_counter()
        for _ in range(n):
            await add_interval(scheduler, fn, hours=1)
        return time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(n):
        add_interval(scheduler, fn, hours=1)
    return time.perf_counter() - start


async def add(lib: Adapter, n: int) -> dict[str, Any]:
    scheduler = await _a(lib.scheduler())
    await _a(lib.start(scheduler))
    try:
        gc.collect()
        elapsed = await _add_many(lib, scheduler, n, jobs.anoop)
        await asyncio.sleep(0)  # let a coalesced wake-up run, as a real program would
        count = await _a(lib.count(scheduler))
        assert count == n, count
    finally:
        await _a(lib.shutdown(scheduler))
    return {"n": n, "us_per_add": elapsed / n * 1e6}


async def add_mem(lib: Adapter, n: int) -> dict[str, Any]:
    scheduler = await _a(lib.scheduler())
    await _a(lib.start(scheduler))
    try:
        fn = jobs.anoop
        await _a(lib.add_interval(scheduler, fn, hours=1))  # warm caches (imports, aliases)
        await asyncio.sleep(0)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        await _add_many(lib, scheduler, n, fn)
        await asyncio.sleep(0)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        assert await _a(lib.count(scheduler)) == n + 1
    finally:
        await _a(lib.shutdown(scheduler))
    return {"n": n, "bytes_per_task": (after - before) / n}


async def bare_asyncio_rate(n: int) -> float:
    done = 0

    async def work() -> None:
        nonlocal done
        done += 1

    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    tasks = [loop.create_task(work()) for _ in range(n)]
    await asyncio.gather(*tasks)
    return n / (time.perf_counter() - start)


async def burst(lib: Adapter, n: int, lead: float) -> dict[str, Any]:
    scheduler = await _a(lib.scheduler())
    await _a(lib.start(scheduler))
    event = jobs.expect(n)
    try:
        due = datetime.now(UTC) + timedelta(seconds=lead)
        began = time.perf_counter()
        for _ in range(n):
            await _a(lib.add_date(scheduler, jobs.counted, due))
        adding = time.perf_counter() - began
        due_perf = time.perf_counter() + (due - datetime.now(UTC)).total_seconds()
        await asyncio.wait_for(event.wait(), 120)
    finally:
        await _a(lib.shutdown(scheduler))
    first, last = jobs.state["first"], jobs.state["last"]
    rate = n / (last - due_perf)
    await asyncio.sleep(0.2)
    baseline = 0.0
    for _ in range(3):  # best of 3: the baseline is cheap, and noise only ever slows it
        gc.collect()
        baseline = max(baseline, await bare_asyncio_rate(n))
    return {
        "n": n,
        "adding_s": adding,
        "added_before_due": adding < lead,
        "due_to_first_ms": (first - due_perf) * 1000,
        "due_to_all_ms": (last - due_perf) * 1000,
        "tasks_per_s": rate,
        "bare_asyncio_tasks_per_s": baseline,
        "ratio_to_bare": rate / baseline,
    }


async def lateness(lib: Adapter, n: int, seconds: float) -> dict[str, Any]:
    scheduler = await _a(lib.scheduler())
    await _a(lib.start(scheduler))
    jobs.lateness.clear()
    try:
        base = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
        for i in range(n):
            at = base + timedelta(microseconds=i * 1_000_000 // n)  # spread over the second
            jobs.starts[i] = at.timestamp()
            await _a(lib.add_interval_from(scheduler, jobs.late, 1, at, [i]))
        # The window is the `seconds` of runs: process CPU time (every thread of the
        # process, robust to other load on the machine) from the first due instant on.
        await asyncio.sleep((base - datetime.now(UTC)).total_seconds())
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu = time.process_time() - cpu0
        window = time.perf_counter() - wall0
    finally:
        await _a(lib.shutdown(scheduler))
    ordered = sorted(jobs.lateness)
    bare, bare_cpu, bare_window = await bare_timer_lateness(n, seconds)
    bare.sort()
    return {
        "n": n,
        "runs": len(ordered),
        "expected_runs": int(n * seconds),
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": _p99(ordered) * 1000,
        "max_ms": ordered[-1] * 1000,
        "cpu_s": cpu,
        "window_s": window,
        "bare_p50_ms": statistics.median(bare) * 1000,
        "bare_p99_ms": _p99(bare) * 1000,
        "bare_cpu_s": bare_cpu * window / bare_window,  # scaled to the scheduler's window
    }


def _p99(ordered: list[float]) -> float:
    return ordered[max(0, int(len(ordered) * 0.99) - 1)]


async def bare_timer_lateness(n: int, seconds: float) -> tuple[list[float], float, float]:
    """The floor of the lateness scenario: n bare ``loop.call_later`` timers, spread over
    the second, re-armed every second; their lateness against wall-clock targets, and the
    process CPU time and wall time of the ``seconds`` they run."""
    loop = asyncio.get_running_loop()
    out: list[float] = []
    base = float(int(time.time()) + 1)
    end = base + seconds

    def fire(target: float) -> None:
        now = time.time()
        out.append(now - target)
        if target + 1.0 < end:
            loop.call_later(target + 1.0 - time.time(), fire, target + 1.0)

    for i in range(n):
        target = base + i / n
        loop.call_later(target - time.time(), fire, target)
    await asyncio.sleep(base - time.time())
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(end - time.time())
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await asyncio.sleep(0.1)
    return out, cpu, wall


async def idle(lib: Adapter, n: int, seconds: float) -> dict[str, Any]:
    scheduler = await _a(lib.scheduler())
    await _a(lib.start(scheduler))
    try:
        far = datetime.now(UTC) + timedelta(days=30)
        for _ in range(n):
            await _a(lib.add_date(scheduler, jobs.anoop, far))
        await asyncio.sleep(0.5)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - wall0
    finally:
        await _a(lib.shutdown(scheduler))
    return {"n": n, "cpu_s_per_s": cpu / wall}


async def cron(lib: Adapter, calls: int, rounds: int = 3) -> dict[str, Any]:
    results: dict[str, float] = {}
    lag = timedelta(milliseconds=3)  # a realistic "now": just after the previous fire
    for name, case in CRON_CASES.items():
        best = float("inf")
        for _ in range(rounds):
            next_fire = lib.cron(case)
            start = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
            previous = next_fire(None, start)
            began = time.perf_counter()
            for _ in range(calls):
                previous = next_fire(previous, previous + lag)
            best = min(best, (time.perf_counter() - began) / calls * 1e6)
        results[name] = best
    return {
        "calls": calls,
        "us_per_call": results,
        "mean_us_per_call": statistics.mean(results.values()),
    }


def _namespace() -> str:
    return "bench_" + uuid.uuid4().hex[:12]


async def store_add(lib: Adapter, kind: str, url: str, n: int) -> dict[str, Any]:
    scheduler = await _a(lib.scheduler(lib.store(kind, url, _namespace())))
    await _a(lib.start(scheduler))
    try:
        await _a(lib.add_interval(scheduler, jobs.anoop, hours=1))  # connect, create tables
        await asyncio.sleep(0.1)
        elapsed = await _add_many(lib, scheduler, n, jobs.anoop)
        assert await _a(lib.count(scheduler)) == n + 1
        await _a(lib.remove_all(scheduler))
    finally:
        await _a(lib.shutdown(scheduler))
    return {"store": kind, "n": n, "us_per_add": elapsed / n * 1e6}


async def store_burst(lib: Adapter, kind: str, url: str, n: int) -> dict[str, Any]:
    scheduler = await _a(lib.scheduler(lib.store(kind, url, _namespace())))
    event = jobs.expect(n)
    await _a(lib.start(scheduler, paused=True))
    try:
        due = datetime.now(UTC) + timedelta(seconds=1)
        began = time.perf_counter()
        for _ in range(n):
            await _a(lib.add_date(scheduler, jobs.counted, due))
        adding = time.perf_counter() - began
        wait = (due - datetime.now(UTC)).total_seconds()
        if wait > 0:
            await asyncio.sleep(wait)
        start = time.perf_counter()
        await _a(lib.resume(scheduler))
        await asyncio.wait_for(event.wait(), 300)
        first, last = jobs.state["first"], jobs.state["last"]
    finally:
        await _a(lib.shutdown(scheduler))
    return {
        "store": kind,
        "n": n,
        "adding_us_per_task": adding / n * 1e6,
        "due_to_first_ms": (first - start) * 1000,
        "due_to_all_ms": (last - start) * 1000,
        "tasks_per_s": n / (last - start),
    }


async def store_list(lib: Adapter, kind: str, url: str, n: int) -> dict[str, Any]:
    """n interval tasks in the store (added one by one through the scheduler), then the
    library's listing call (asyncz: ``get_task_infos()``; Asyncz 0.17.2: ``get_tasks()``;
    APScheduler 3: ``get_jobs()``; APScheduler 4: ``get_schedules()``): best of 3."""
    store = lib.store(kind, url, _namespace()) if kind != "memory" else None
    scheduler = await _a(lib.scheduler(store))
    await _a(lib.start(scheduler))
    try:
        await _add_many(lib, scheduler, n, jobs.anoop)
        times = []
        for _ in range(3):
            began = time.perf_counter()
            listed = await _a(lib.list(scheduler))
            times.append(time.perf_counter() - began)
            assert len(listed) == n, len(listed)
        extra: dict[str, Any] = {}
        if lib.lib == "asyncz":  # the plain list of Task objects, beside the snapshots
            began = time.perf_counter()
            assert len(scheduler.get_tasks()) == n
            extra["get_tasks_s"] = time.perf_counter() - began
        await _a(lib.remove_all(scheduler))
    finally:
        await _a(lib.shutdown(scheduler))
    return {"store": kind, "n": n, "list_s": min(times), "list_first_s": times[0], **extra}


def _rss() -> int:
    """Resident set size of this process, bytes (VmRSS)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


async def footprint(name: str, seconds: float) -> dict[str, Any]:
    """Import time of the library's asyncio scheduler module (this process has imported
    asyncio and nothing of the library yet), then the resident memory of a started scheduler
    with no task, and its CPU while idle."""
    gc.collect()
    rss0 = _rss()
    began = time.perf_counter()
    importlib.import_module(MODULES[name])
    import_s = time.perf_counter() - began
    rss_imported = _rss()
    lib = load(name)
    began = time.perf_counter()
    scheduler = await _a(lib.scheduler())
    await _a(lib.start(scheduler))
    first_start_s = time.perf_counter() - began  # what the import left for the first use
    try:
        await asyncio.sleep(0.5)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        gc.collect()
        rss_idle = _rss()
    finally:
        await _a(lib.shutdown(scheduler))
    return {
        "import_ms": import_s * 1000,
        "first_scheduler_ms": first_start_s * 1000,
        "rss_base_mib": rss0 / 2**20,
        "rss_import_mib": (rss_imported - rss0) / 2**20,
        "rss_idle_mib": rss_idle / 2**20,
        "rss_idle_added_mib": (rss_idle - rss0) / 2**20,
        "idle_cpu_s_per_s": cpu,
    }


DEFAULT_N = {
    "add": 10_000,
    "add-mem": 10_000,
    "burst": 10_000,
    "lateness": 1_000,
    "idle": 10_000,
    "cron": 20_000,
    "store-add": 5_000,
    "store-burst": 2_000,
    "store-list": 10_000,
    "footprint": 1,
}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    n = args.n or DEFAULT_N[args.scenario]
    s = args.scenario
    if s == "footprint":  # before the adapter (and the library) is imported
        result = await footprint(args.lib, args.seconds or 2.0)
        from importlib.metadata import version as _version

        dist = "apscheduler" if args.lib.startswith("apscheduler") else "asyncz"
        return {"lib": args.lib, "version": _version(dist), "python": sys.version.split()[0],
                "scenario": s, **result}  # fmt: skip
    lib = load(args.lib)
    if s == "add":
        result = await add(lib, n)
    elif s == "add-mem":
        result = await add_mem(lib, n)
    elif s == "burst":
        result = await burst(lib, n, args.lead)
    elif s == "lateness":
        result = await lateness(lib, n, args.seconds or 10.0)
    elif s == "idle":
        result = await idle(lib, n, args.seconds or 5.0)
    elif s == "cron":
        result = await cron(lib, n)
    elif s == "store-add":
        result = await store_add(lib, args.store, args.url, n)
    elif s == "store-burst":
        result = await store_burst(lib, args.store, args.url, n)
    elif s == "store-list":
        result = await store_list(lib, args.store, args.url, n)
    else:
        raise SystemExit(f"unknown scenario {s!r}")
    return {
        "lib": lib.lib,
        "version": lib.version,
        "python": sys.version.split()[0],
        "scenario": s,
        **result,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lib", required=True)
    parser.add_argument("--scenario", required=True, choices=sorted(DEFAULT_N))
    parser.add_argument("--n", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=0.0)
    parser.add_argument("--lead", type=float, default=3.0, help="burst: seconds until due")
    parser.add_argument("--store", choices=["memory", "redis", "mongodb", "sqlite", "postgresql"])
    parser.add_argument("--url")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
