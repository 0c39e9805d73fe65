"""Scale curves (issue 19), asyncz only: how each cost grows with the number of stored tasks.

    python benchmarks/bench_scale.py             memory 1k-1M (1M if the budget allows),
                                                 Redis / PostgreSQL / SQLite 10k and 100k
    python benchmarks/bench_scale.py --quick     memory 1k-100k, stores 10k
    nox -s bench                                  runs it after benchmarks/run.py

For each store and size n, one fresh process (``--role child``):

* **fill**: n interval(hours=1) tasks; memory: ``add_task`` one by one on the started
  scheduler (the whole fill is timed: µs/add over 0 → n); the persistent stores: built as
  ``Task`` objects and written with ``store.add_tasks`` in chunks of 5,000 (bulk, untimed).
* **bytes per task**: memory: the growth of the process's resident memory (VmRSS, after
  ``gc.collect()``) over the fill, / n (RSS, not tracemalloc: the goal row of the side-by-side
  table is tracemalloc's); Redis: ``used_memory`` of the server; PostgreSQL:
  ``pg_total_relation_size`` of the table (rows + indexes); SQLite: the file's size.
* **add at n**: 1,000 ``add_task`` (date tasks, all due at one instant T a few seconds ahead)
  one by one on top of the n: µs/add at size n.
* **1,000 due among n**: T → the last of those 1,000 runs.
* **list**: ``get_task_infos()`` (and ``get_tasks()``) over the n tasks.
* **restart** (persistent stores): the scheduler shuts down with one task overdue; a new
  scheduler on the same store: ``start()`` → that task's run.

Results: ``benchmarks/results/scale.json`` and the "Scale" section of ``docs/benchmarks.md``.
"""

# ruff: noqa: RUF001  (typographic signs in the Markdown it writes)
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))
SECTION = "## Scale"
UTC = timezone.utc
DUE = 1000

# ========================================================================== child


def _rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _store(kind: str, url: str, ns: str) -> Any:
    if kind == "memory":
        return None
    if kind == "redis":
        from asyncz.stores.redis import RedisStore

        return RedisStore(url=url, tasks_key=f"{ns}.tasks", run_times_key=f"{ns}.run_times")
    from asyncz.stores.sqlalchemy import SQLAlchemyStore

    return SQLAlchemyStore(database=url, tablename=ns)


async def _server_bytes(kind: str, url: str, ns: str) -> int:
    if kind == "redis":
        import redis

        client = redis.Redis.from_url(url)
        try:
            return int(client.info("memory")["used_memory"])
        finally:
            client.close()
    if kind == "postgresql":
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            found = await conn.fetchval("SELECT to_regclass($1)", ns)
            if found is None:
                return 0
            return int(await conn.fetchval("SELECT pg_total_relation_size($1)", ns))
        finally:
            await conn.close()
    if kind == "sqlite":
        path = url.removeprefix("sqlite:///")
        return os.path.getsize(path) if os.path.exists(path) else 0
    return 0


async def child(kind: str, url: str, n: int) -> dict[str, Any]:
    from adapters import jobs
    from asyncz.schedulers.asyncio import AsyncIOScheduler
    from asyncz.stores.base import call
    from asyncz.tasks import Task

    ns = "scale_" + uuid.uuid4().hex[:10]
    if kind == "sqlite":  # a file per run: its size is the store's
        url = f"sqlite:///{os.path.dirname(url.removeprefix('sqlite:///'))}/{ns}.sqlite3"
    out: dict[str, Any] = {"store": kind, "n": n}

    def make() -> Any:
        store = _store(kind, url, ns)
        stores = {} if store is None else {"stores": {"default": store}}
        # The default store_timeout (10 s): listing is paged (1,000 tasks per store call),
        # so 100k stored tasks list within it.
        return AsyncIOScheduler(timezone=UTC, **stores)

    scheduler = make()
    scheduler.start()
    await asyncio.sleep(0.05)
    store = scheduler.lookup_store("default")
    gc.collect()
    rss0, server0 = _rss(), await _server_bytes(kind, url, ns)
    began = time.perf_counter()
    if kind == "memory":
        add = scheduler.add_task
        for _ in range(n):
            add(jobs.anoop, "interval", hours=1)
        out["fill_us_per_add"] = (time.perf_counter() - began) / n * 1e6
    else:
        when = datetime.now(UTC) + timedelta(hours=1)
        for start in range(0, n, 5000):
            chunk = [
                Task(jobs.anoop, id=uuid.uuid4().hex, trigger="interval", hours=1,
                     next_run_time=when, coalesce=True, max_instances=1,
                     misfire_grace_time=1.0)
                for _ in range(start, min(n, start + 5000))
            ]  # fmt: skip
            await call(store, store.add_tasks(chunk))
        out["fill_bulk_us_per_task"] = (time.perf_counter() - began) / n * 1e6
    out["fill_s"] = time.perf_counter() - began
    gc.collect()
    await asyncio.sleep(0.2)
    if kind == "memory":
        out["bytes_per_task"] = (_rss() - rss0) / n
    else:
        out["bytes_per_task"] = (await _server_bytes(kind, url, ns) - server0) / n

    # 1,000 single adds at size n, all due at T; then T -> the last of their runs
    event = jobs.expect(DUE)
    lead = 2.0 if kind == "memory" else 4.0
    due = datetime.now(UTC) + timedelta(seconds=lead)
    began = time.perf_counter()
    for _ in range(DUE):
        scheduler.add_task(jobs.counted, "date", run_at=due, misfire_grace_time=None)
    adding = time.perf_counter() - began
    out["add_us_at_n"] = adding / DUE * 1e6
    out["added_before_due"] = adding < lead
    due_perf = time.perf_counter() + (due - datetime.now(UTC)).total_seconds()
    await asyncio.wait_for(event.wait(), 120)
    out["due_1k_first_ms"] = (jobs.state["first"] - due_perf) * 1000
    out["due_1k_all_ms"] = (jobs.state["last"] - due_perf) * 1000
    await asyncio.sleep(0.3)

    began = time.perf_counter()
    infos = await scheduler.get_task_infos_async()
    out["get_task_infos_s"] = time.perf_counter() - began
    out["listed"] = len(infos)
    del infos
    began = time.perf_counter()
    listed = await scheduler.get_tasks_async()
    out["get_tasks_s"] = time.perf_counter() - began
    del listed

    if kind != "memory":  # restart with a full store: start() -> an overdue task's run
        event = jobs.expect(1)
        scheduler.add_task(jobs.counted, "date", run_at=datetime.now(UTC) + timedelta(seconds=0.2),
                           misfire_grace_time=None)  # fmt: skip
        scheduler.pause()
        await asyncio.sleep(0.3)
        scheduler.shutdown()
        await asyncio.sleep(0.3)
        scheduler = make()
        began = time.perf_counter()
        scheduler.start()
        out["restart_start_call_ms"] = (time.perf_counter() - began) * 1000
        await asyncio.wait_for(event.wait(), 120)
        out["restart_to_first_run_ms"] = (jobs.state["last"] - began) * 1000
        scheduler.remove_all_tasks()
    scheduler.shutdown()
    if kind == "sqlite":
        os.unlink(url.removeprefix("sqlite:///"))
    out["peak_rss_mib"] = _rss() / 2**20
    return out


# ========================================================================== harness


def run_one(kind: str, url: str, n: int, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--role", "child", "--store", kind, "--url", url,
           "--n", str(n)]  # fmt: skip
    began = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "PYTHONHASHSEED": "0"})  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"store": kind, "n": n, "error": f"timed out after {timeout:g} s"}
    wall = time.perf_counter() - began
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return {**json.loads(line), "wall_s": wall}
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    return {"store": kind, "n": n, "error": f"exit {done.returncode}: " + " | ".join(tail)[-400:]}


def _fmt(value: Any, fmt: str) -> str:
    return "–" if value is None else fmt.format(value)


def _growth(rows: list[dict[str, Any]], key: str) -> str:
    """The exponent k of value ∝ n^k between the smallest and the largest n (log-log slope)."""
    import math

    good = [r for r in rows if r.get(key) and "error" not in r]
    if len(good) < 2:
        return "–"
    a, b = good[0], good[-1]
    k = math.log(b[key] / a[key]) / math.log(b["n"] / a["n"])
    return f"n^{k:.2f}"


COLUMNS: list[tuple[str, str, str]] = [
    ("add_us_at_n", "add at n, µs/add", "{:,.1f}"),
    ("bytes_per_task", "bytes/task", "{:,.0f}"),
    ("due_1k_all_ms", "1,000 due among n: due → all run, ms", "{:,.0f}"),
    ("get_task_infos_s", "`get_task_infos()`, s", "{:.3g}"),
    ("get_tasks_s", "`get_tasks()`, s", "{:.3g}"),
    ("restart_to_first_run_ms", "restart: `start()` → first run, ms", "{:,.0f}"),
]

DESIGN = {
    "add_us_at_n": "O(log n) memory (heap push) / O(1) round trip: flat",
    "bytes_per_task": "O(1) per task: flat",
    "due_1k_all_ms": "O(k log n) memory, O(k + log n) indexed stores: flat in n",
    "get_task_infos_s": "O(n): ∝ n",
    "get_tasks_s": "O(n): ∝ n",
    "restart_to_first_run_ms": "O(1): the store keeps its index, nothing is loaded",
}


def render_section(results: dict[str, Any]) -> str:
    rows = results.get("runs", [])
    lines = [SECTION, "",
             f"`benchmarks/bench_scale.py` ({'quick' if results.get('quick') else 'full'} run, "
             f"{results.get('started', '?')}; load average {results.get('load_before', '?')} → "
             f"{results.get('load_after', '?')}; one process per row, one round each). asyncz "
             "only: how each cost grows with the number n of stored tasks (interval tasks an "
             "hour ahead). The memory store's bytes are the process's resident memory (RSS) "
             "growth; the servers' are Redis `used_memory`, PostgreSQL "
             "`pg_total_relation_size`, the SQLite file size.", "",
             "![Scale curves](images/bench-scale.png)", "",
             "| store | n | " + " | ".join(c[1] for c in COLUMNS) + " |",
             "|---|---:|" + "---:|" * len(COLUMNS)]  # fmt: skip
    for r in rows:
        if "error" in r:
            lines.append(
                f"| {r['store']} | {r['n']:,} | {r['error']} |" + " |" * (len(COLUMNS) - 1)
            )
            continue
        cells = [_fmt(r.get(k), f) for k, _, f in COLUMNS]
        lines.append(f"| {r['store']} | {r['n']:,} | " + " | ".join(cells) + " |")
    lines += ["", "Growth between the smallest and the largest n of each store (the exponent k "
              "of value ∝ n^k: 0 is flat, 1 is linear), against the design:", "",
              "| store | " + " | ".join(c[1] for c in COLUMNS) + " |",
              "|---|" + "---:|" * len(COLUMNS)]  # fmt: skip
    for kind in dict.fromkeys(r["store"] for r in rows):
        mine = [r for r in rows if r["store"] == kind]
        lines.append(f"| {kind} | " + " | ".join(_growth(mine, k) for k, _, _ in COLUMNS) + " |")
    lines.append("| design | " + " | ".join(DESIGN[k] for k, _, _ in COLUMNS) + " |")
    lines += [
        "",
        "Every row runs with the default `store_timeout` (10 s). Listing is O(n) by "
        "design, but paged: each store call reads at most 1,000 tasks under the timeout "
        "(`Store.get_task_page`), so 100k stored tasks list in several calls instead of "
        "one that timed out (the previous round needed `store_timeout=120`).",
    ]
    for note in results.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


def splice(doc: str, section: str) -> str:
    from bench_nodes import splice as _splice

    return _splice(doc, section, SECTION)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=["harness", "child"], default="harness")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--stores", default="memory,redis,postgresql,sqlite")
    parser.add_argument(
        "--budget",
        type=float,
        default=150.0,
        help="s the 1M memory run may take (estimated from 100k)",
    )
    parser.add_argument("--timeout", type=float, default=400)
    parser.add_argument("--json-out", default=str(BENCH / "results" / "scale.json"))
    parser.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--store", default="memory")
    parser.add_argument("--url", default="")
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()
    if args.role == "child":
        print(json.dumps(asyncio.run(child(args.store, args.url, args.n))), flush=True)
        return

    from run import Servers, load_avg, machine

    stores = [s for s in args.stores.split(",") if s]
    results: dict[str, Any] = {
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(), "load_before": load_avg(), "quick": args.quick, "runs": [],
        "notes": [],
    }  # fmt: skip
    servers = Servers()
    try:
        servers.start([s for s in stores if s != "memory"])
        for kind in stores:
            sizes = [1000, 10_000, 100_000] if kind == "memory" else [10_000, 100_000]
            if args.quick:
                sizes = sizes[:-1] if kind != "memory" else sizes
            for n in sizes:
                if kind != "memory" and kind not in servers.urls:
                    results["runs"].append({"store": kind, "n": n,
                                            "error": f"n/a: {servers.missing.get(kind)}"})  # fmt: skip
                    continue
                row = run_one(kind, servers.urls.get(kind, ""), n, args.timeout)
                results["runs"].append(row)
                print(f"[scale] {kind} {n:,}: " + (row.get("error") or ", ".join(
                    f"{k}={v:.4g}" for k, v in row.items() if isinstance(v, float))),
                    file=sys.stderr, flush=True)  # fmt: skip
            if kind == "memory" and not args.quick:
                last = results["runs"][-1]
                estimate = 10 * last.get("wall_s", 1e9) * 1.2  # O(n) fill and listing, + margin
                if estimate <= args.budget:
                    row = run_one(kind, "", 1_000_000, args.timeout)
                    results["runs"].append(row)
                    print(f"[scale] memory 1,000,000: {row.get('error') or row.get('wall_s')}",
                          file=sys.stderr)  # fmt: skip
                else:
                    results["notes"].append(
                        f"memory 1,000,000 not run: 100k took {last.get('wall_s', 0):.0f} s, "
                        f"so 1M would take about {estimate:.0f} s, over the {args.budget:.0f} s "
                        "budget of this step.")  # fmt: skip
    finally:
        servers.close()
    results["load_after"] = load_avg()
    results["servers"] = dict(servers.versions)
    results["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    out = Path(args.json_out)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"[scale] wrote {out}", file=sys.stderr)
    if not args.no_doc:
        doc = Path(args.doc)
        doc.write_text(splice(doc.read_text() if doc.exists() else "", render_section(results)))


if __name__ == "__main__":
    main()
