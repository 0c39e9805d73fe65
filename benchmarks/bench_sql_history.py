"""The cost of run history in the SQL store: round trips per burst batch with history on and
off, and the insert cost per record.

Run: ``python benchmarks/bench_sql_history.py [--json] [--burst 2000] [--records 10240]
[--backend sqlite|postgresql|both]``.

* **Burst** (``--burst`` date tasks stored and due when the scheduler starts, until every
  run finished and the scheduler shut down, which flushes the history buffer), once with
  ``asyncz.history.enabled`` off and once on, in the same run: tasks/s, the statements the
  store sent by kind (claims, write-backs, history inserts, other) and, on PostgreSQL, the
  real round trips: the connections go through a counting TCP proxy, and a round trip is a
  flight of client bytes that follows server bytes (pipelined messages count once).
  "Per batch" divides by the claim statements that took tasks.
* **Insert cost**: ``store.add_runs`` of ``--records`` records in batches of 256 (the
  recorder's flush size), and of 1, in µs per record.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

import store_bench
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores.base import call_sync
from asyncz.tasks.runs import RunRecord
from asyncz_sqlalchemy import SQLAlchemyStore
from asyncz_sqlalchemy.testing import TemporaryPostgres

UTC = timezone.utc


class CountingProxy:
    """A TCP proxy on its own thread that counts round trips (client flights)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.round_trips = 0
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait()

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._pipe, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self._loop.run_forever()

    async def _pipe(self, client_r: Any, client_w: Any) -> None:
        server_r, server_w = await asyncio.open_connection(*self.target)
        state = {"server_spoke": True}

        async def pump(reader: Any, writer: Any, from_client: bool) -> None:
            try:
                while data := await reader.read(65536):
                    if from_client and state["server_spoke"]:
                        self.round_trips += 1
                    state["server_spoke"] = not from_client
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        await asyncio.gather(pump(client_r, server_w, True), pump(server_r, client_w, False))


def classify(sql: str) -> str:
    text = " ".join(sql.split()).upper()
    head = text.split("(")[0]
    if text.startswith("BEGIN"):
        return "begin"
    if text.startswith("INSERT INTO") and head.rstrip().endswith("_RUNS"):
        return "history"
    if "SET LEASE_OWNER=" in text and "DUE_AT <=" in text:
        return "claim"
    if (
        text.startswith("WITH BATCH")  # PostgreSQL: one statement
        or (text.startswith("SELECT") and "LEASE_OWNER FROM" in text)  # SQLite: 2 or 3
        or ("REVISION=" in text and text.startswith("UPDATE"))
        or (text.startswith("DELETE FROM") and ".ID IN" in text)
    ):
        return "write_back"
    if "_NODES" in text or "LEASE_UNTIL=" in text:
        return "heartbeat"
    return "other"


def burst(url: str, count: int, history: bool, proxy: CountingProxy | None) -> dict[str, Any]:
    name = f"burst_{uuid.uuid4().hex[:6]}"
    store_bench.seed_due(SQLAlchemyStore(url, tablename=name), count)

    store = SQLAlchemyStore(url, tablename=name)
    kinds: Counter[str] = Counter()
    claimed = Counter[str]()

    def before(conn: Any, cursor: Any, sql: str, params: Any, ctx: Any, many: bool) -> None:
        kinds[classify(sql)] += 1

    def after(conn: Any, cursor: Any, sql: str, params: Any, ctx: Any, many: bool) -> None:
        if classify(sql) == "claim" and cursor.rowcount and cursor.rowcount > 0:
            claimed["batches"] += 1

    def connected(dbapi_connection: Any, record: Any) -> None:
        kinds["new_connection"] += 1

    sa.event.listen(store.engine.sync_engine, "before_cursor_execute", before)
    sa.event.listen(store.engine.sync_engine, "after_cursor_execute", after)
    sa.event.listen(store.engine.sync_engine, "connect", connected)
    scheduler = AsyncIOScheduler(
        stores={"default": store}, global_config={"asyncz.history.enabled": history}
    )
    scheduler.start(paused=True)  # connections and schema set-up before the measurement
    kinds.clear()
    trips = proxy.round_trips if proxy else 0
    elapsed, _ = store_bench.drain(scheduler, resume=True)
    figures: dict[str, Any] = {
        "tasks_per_s": round(count / elapsed),
        "statements": dict(kinds),
        "claim_batches": claimed["batches"],
    }
    if proxy is not None:
        figures["round_trips"] = proxy.round_trips - trips
    if history:
        checker = SQLAlchemyStore(url, tablename=name)
        call_sync(checker, checker.start(AsyncIOScheduler(), "default"))
        figures["records"] = len(call_sync(checker, checker.get_runs(limit=None)))
        call_sync(checker, checker.shutdown())
    return figures


def insert_cost(url: str, records: int, proxy: CountingProxy | None) -> dict[str, float]:
    store = SQLAlchemyStore(url, tablename=f"ins_{uuid.uuid4().hex[:6]}")
    call_sync(store, store.start(AsyncIOScheduler(), "default"))
    now = datetime.now(UTC)

    def make(i: int) -> RunRecord:
        return RunRecord(f"t{i % 1000}", f"r{i}", now, "success", now, now, now, 0.001, 0.002,
                         node="node-1", executor="default", return_repr="None")  # fmt: skip

    batch = [make(i) for i in range(records)]
    results: dict[str, float] = {}
    if proxy is not None:  # warm connections (statement prepared): round trips per batch
        for _ in range(3):
            call_sync(store, store.add_runs(batch[:256]))
        trips = proxy.round_trips
        for _ in range(10):
            call_sync(store, store.add_runs(batch[:256]))
        results["round_trips_per_add_runs_256"] = (proxy.round_trips - trips) / 10
    for size in (256, 1):
        n = records if size > 1 else min(records, 1000)
        began = time.perf_counter()
        for start in range(0, n, size):
            call_sync(store, store.add_runs(batch[start : start + size]))
        results[f"us_per_record_batch_{size}"] = round((time.perf_counter() - began) / n * 1e6, 1)
    for label in ("first", "again"):  # the first call prepares the statement
        began = time.perf_counter()
        call_sync(store, store.get_last_runs([f"t{i}" for i in range(1000)], ("success",)))
        elapsed = (time.perf_counter() - began) * 1e3
        results[f"ms_get_last_runs_1000_tasks_{label}"] = round(elapsed, 1)
    began = time.perf_counter()
    call_sync(store, store.prune_runs(now + timedelta(seconds=1), 3600.0, 5))
    results["ms_prune_full_sweep"] = round((time.perf_counter() - began) * 1e3, 1)
    call_sync(store, store.shutdown())
    return results


def measure(url: str, options: Any, proxy: CountingProxy | None) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for history in (False, True):
        figures[f"burst_history_{'on' if history else 'off'}"] = burst(
            url, options.burst, history, proxy
        )
    key = "round_trips" if proxy else None
    for part in (figures["burst_history_off"], figures["burst_history_on"]):
        batches = max(1, part["claim_batches"])
        total = (
            part[key]
            if key
            else sum(
                v for k, v in part["statements"].items() if k not in ("begin", "new_connection")
            )
        )
        part["per_batch"] = round(total / batches, 2)
    figures["insert"] = insert_cost(url, options.records, proxy)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--records", type=int, default=10_240)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    results: dict[str, Any] = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
    if options.backend in ("sqlite", "both"):
        directory = tempfile.mkdtemp(prefix="asyncz-bench-hist-")
        try:
            results["sqlite"] = measure(f"sqlite:///{directory}/bench.db", options, None)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    if options.backend in ("postgresql", "both"):
        with TemporaryPostgres() as server:
            proxy = CountingProxy("127.0.0.1", server.port)
            url = server.url.replace(f":{server.port}/", f":{proxy.port}/")
            results["postgresql"] = measure(url, options, proxy)
    print(json.dumps(results, indent=None if options.json else 2))


if __name__ == "__main__":
    main()
