"""The cost of run history on a RedisStore burst: history off and on, in the same run,
against a private redis-server (started and stopped by this script).

Run: ``python benchmarks/bench_redis_history.py [--burst 2000] [--rounds 3] [--json]``.

For each setting, ``--burst`` date tasks already stored and due when the scheduler starts:
tasks/s until every run finished, the round trips the scheduler's client made (requests
written: a pipeline or a script run counts once) and the script runs the server saw
(``INFO commandstats``), until the tasks were removed and the history flushed (shutdown).
The best rate of ``--rounds`` is kept. Goal (issue 17): at most one extra round trip per
history batch on Redis.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import redis
from redis.asyncio.connection import AbstractConnection

import store_bench
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores.base import call_sync
from asyncz_redis import RedisStore
from bench_redis import running_server

_sent = 0
_original_send = AbstractConnection.send_packed_command


async def _counting_send(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
    global _sent
    _sent += 1
    await _original_send(self, command, check_health)


def _evalsha(port: int) -> int:
    stats = redis.Redis(port=port).info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def burst(port: int, count: int, history: bool, name: str) -> dict[str, float]:
    def make() -> RedisStore:
        return RedisStore(
            host="127.0.0.1", port=port, tasks_key=f"{name}.tasks", run_times_key=f"{name}.rt"
        )

    store_bench.seed_due(make(), count)
    global _sent
    scheduler = AsyncIOScheduler(
        stores={"default": make()}, global_config={"asyncz.history.enabled": history}
    )
    scripts, _sent = _evalsha(port), 0
    elapsed, _ = store_bench.drain(scheduler)
    sent, scripts = _sent, _evalsha(port) - scripts
    reader = make()
    call_sync(reader, reader.start(AsyncIOScheduler(), "default"))
    runs = len(call_sync(reader, reader.get_runs(limit=None)))
    call_sync(reader, reader.shutdown())
    if runs != (count if history else 0):
        raise RuntimeError(f"{runs} history records for {count} runs (history {history})")
    return {"tasks_per_s": count / elapsed, "round_trips": sent, "scripts": scripts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    AbstractConnection.send_packed_command = _counting_send  # type: ignore[method-assign]
    results: dict[str, Any] = {"burst": options.burst, "python": sys.version.split()[0]}
    with running_server("asyncz-bench-redis-history-") as port:
        for round_ in range(options.rounds):
            for history in (False, True):
                key = "history_on" if history else "history_off"
                got = burst(port, options.burst, history, f"b{round_}{key}")
                best = results.get(key)
                if best is None or got["tasks_per_s"] > best["tasks_per_s"]:
                    results[key] = got
    if options.json:
        print(json.dumps(results, indent=2))
        return
    for key in ("history_off", "history_on"):
        got = results[key]
        print(
            f"{key:12} {got['tasks_per_s']:9,.0f} tasks/s  {got['round_trips']:5} round trips  "
            f"{got['scripts']:5} script runs"
        )


if __name__ == "__main__":
    main()
