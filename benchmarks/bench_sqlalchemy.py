"""SQLAlchemyStore throughput on a SQLite file and on a throw-away PostgreSQL cluster.

Run: ``python benchmarks/bench_sqlalchemy.py [--json] [--tasks 10000] [--burst 2000]
[--backend sqlite|postgresql|both]``. The PostgreSQL cluster is created with ``initdb`` in a
temporary directory, started with ``pg_ctl`` on a free port and removed at the end
(:class:`asyncz_sqlalchemy.testing.TemporaryPostgres`).

Per backend:

* adding ``--tasks`` tasks, in µs per task:
  - ``add_task`` per task on a scheduler that is not started yet, then ``start()`` (the
    pending tasks are committed in one transaction);
  - ``add_task`` per task on a running scheduler (one committed transaction each), written
    from the calling thread by the store's synchronous engine (``add_task_sync``), and the
    same with that path switched off (a hop to the store's I/O thread and the async driver);
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
from typing import Any

import sqlalchemy

import store_bench
from asyncz_sqlalchemy import SQLAlchemyStore
from asyncz_sqlalchemy.testing import TemporaryPostgres


def _run(make: Any, tasks: int, burst: int) -> dict[str, Any]:
    def thread_hop(name: str) -> SQLAlchemyStore:
        store = make(name)
        store.add_task_sync = lambda task: False  # the scheduler awaits add_task instead
        return store

    figures = store_bench.run_all(make, tasks, burst)
    figures["us_per_add_running_thread_hop"] = store_bench.running(thread_hop, tasks)
    return figures


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
            results["sqlite"] = _run(
                lambda name: SQLAlchemyStore(url, tablename=name), options.tasks, options.burst
            )
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    if options.backend in ("postgresql", "both"):
        with TemporaryPostgres() as server:
            results["postgresql"] = _run(
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
        store_bench.report(figures, n, results["burst"], indent="  ")
        print(f"  add {n:,} tasks, add_task each, running, no sync path: "
              f"{figures['us_per_add_running_thread_hop']:6.1f} µs/add")  # fmt: skip


if __name__ == "__main__":
    main()
