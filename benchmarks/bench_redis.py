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
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import redis

import store_bench
from asyncz_redis import RedisStore


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


@contextlib.contextmanager
def running_server(prefix: str) -> Iterator[int]:
    """A private redis-server in a temporary directory for the ``with`` block: its port."""
    directory = tempfile.mkdtemp(prefix=prefix)
    process, port = start_server(directory)
    try:
        yield port
    finally:
        process.terminate()
        process.wait()
        shutil.rmtree(directory, ignore_errors=True)


def store_factory(port: int) -> store_bench.Factory:
    def make(name: str) -> RedisStore:
        return RedisStore(
            host="127.0.0.1",
            port=port,
            tasks_key=f"{name}.tasks",
            run_times_key=f"{name}.run_times",
        )

    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--burst", type=int, default=2_000)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    with running_server("asyncz-bench-redis-") as port:
        server = redis.Redis(port=port).info("server")["redis_version"]
        results: dict[str, Any] = {
            "redis_server": server,
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "tasks": options.tasks,
            "burst": options.burst,
            **store_bench.run_all(store_factory(port), options.tasks, options.burst),
        }
    if options.json:
        print(json.dumps(results, indent=2))
        return
    print(f"redis-server {results['redis_server']}, Python {results['python']}, "
          f"{results['cpus']} CPUs")  # fmt: skip
    store_bench.report(results, results["tasks"], results["burst"])


if __name__ == "__main__":
    main()
