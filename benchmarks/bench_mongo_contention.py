"""Contention of MongoDBStore claims: N nodes (store instances) drain T tasks due at once.

Each node loops ``acquire_due_tasks(node, now, lease, batch)`` then ``release_tasks`` (every
task finished, so the write-back deletes it) until nothing is due, all nodes at once on one
event loop, each with its own client. Reported: the wall time until every task was claimed
and written back, claims per node, duplicates (a task claimed twice: must be 0), and per
node the server commands (round trips) it sent and the *conflicts*: candidates a node read
as due but that another node claimed first (its ``update_many`` matched fewer than it
asked for).

Starts its own mongoeco server (``scripts/setup-mongoeco``; in-memory engine, ``--sqlite``
for its SQLite engine) or uses ``ASYNCZ_TEST_MONGO_URL``. mongoeco is a Python emulation:
the time measures it more than the store; the round trips and conflicts do not depend on it.

Run: ``python benchmarks/bench_mongo_contention.py [--nodes 5] [--tasks 1000] [--batch 100]
[--sqlite] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

from pymongo import monitoring

from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.testing import make_task
from asyncz_mongo import MongoDBStore

try:
    from bench_mongo import server_url
except ImportError:  # run from elsewhere
    from benchmarks.bench_mongo import server_url  # type: ignore[no-redef]

UTC = timezone.utc


class Tally(monitoring.CommandListener):
    """One node's commands by name, and the candidates its claims lost to other nodes."""

    def __init__(self) -> None:
        self.commands: Counter[str] = Counter()
        self.micros: Counter[str] = Counter()
        self.conflicts = 0
        self._asked: dict[int, int] = {}
        self.active = False

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if not self.active or event.command_name in {"hello", "isMaster", "endSessions"}:
            return
        self.commands[event.command_name] += 1
        if event.command_name == "update" and len(event.command["updates"]) == 1:
            query = event.command["updates"][0]["q"]
            ids = query.get("_id") if isinstance(query, dict) else None
            if isinstance(ids, dict) and "$in" in ids and "due_at" in query:
                self._asked[event.request_id] = len(ids["$in"])

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if self.active:
            self.micros[event.command_name] += event.duration_micros
        asked = self._asked.pop(event.request_id, None)
        if asked is not None:
            self.conflicts += asked - int(event.reply.get("nModified", 0))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._asked.pop(event.request_id, None)


async def run(url: str, nodes: int, tasks: int, batch: int, lease: float) -> dict[str, Any]:
    collection = f"contention-{uuid.uuid4().hex[:8]}"
    host = AsyncIOScheduler()
    tallies = [Tally() for _ in range(nodes)]
    stores = [
        MongoDBStore(
            database="asyncz_bench",
            collection=collection,
            url=url,
            event_listeners=[tally],
            serverSelectionTimeoutMS=5000,
        )
        for tally in tallies
    ]
    for store in stores:
        await store.start(host, "default")
    due = datetime.now(UTC) - timedelta(seconds=1)
    await stores[0].add_tasks([make_task(f"t{i:05d}", due) for i in range(tasks)])
    claimed: dict[str, list[str]] = defaultdict(list)
    passes: Counter[str] = Counter()
    empty: Counter[str] = Counter()

    async def drain(node: str, store: MongoDBStore) -> None:
        # As a scheduler's passes do: claim, write back; a pass that got nothing looks again
        # at once while anything is due.
        while True:
            now = datetime.now(UTC)
            got = await store.acquire_due_tasks(node, now, lease, batch)
            if not got:
                following = await store.get_next_run_time()
                if following is None or following > now:
                    return
                empty[node] += 1
                continue
            passes[node] += 1
            for task in got:
                claimed[task.id].append(node)
                task.next_run_time = None
            await store.release_tasks(node, got)

    for tally in tallies:
        tally.active = True
    started = time.perf_counter()
    await asyncio.gather(*(drain(f"node-{n}", s) for n, s in enumerate(stores)))
    elapsed = time.perf_counter() - started
    for tally in tallies:
        tally.active = False
    left = await stores[0].client["asyncz_bench"][collection].count_documents({})
    await stores[0].client["asyncz_bench"].drop_collection(collection)
    await stores[0].client["asyncz_bench"].drop_collection(f"{collection}.nodes")
    for store in stores:
        await store.shutdown()
    per_node = Counter(owner for owners in claimed.values() for owner in owners)
    return {
        "nodes": nodes,
        "tasks": tasks,
        "batch": batch,
        "seconds": round(elapsed, 3),
        "tasks_per_second": round(tasks / elapsed, 1),
        "claimed": len(claimed),
        "duplicates": sum(len(owners) - 1 for owners in claimed.values()),
        "left_in_store": left,
        "round_trips": sum(sum(t.commands.values()) for t in tallies),
        "conflicts": sum(t.conflicts for t in tallies),
        "per_node": [
            {
                "node": f"node-{n}",
                "tasks": per_node[f"node-{n}"],
                "passes": passes[f"node-{n}"],
                "empty_passes": empty[f"node-{n}"],
                "round_trips": sum(tallies[n].commands.values()),
                "commands": dict(tallies[n].commands),
                "command_ms": {k: v // 1000 for k, v in tallies[n].micros.items()},
                "conflicts": tallies[n].conflicts,
            }
            for n in range(nodes)
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--sqlite", action="store_true", help="mongoeco's SQLite engine")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    url, server = server_url(sqlite=args.sqlite)
    try:
        result = asyncio.run(run(url, args.nodes, args.tasks, args.batch, args.lease))
    finally:
        if server is not None:
            server.close()
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{result['nodes']} nodes, {result['tasks']} tasks due at once, batch {result['batch']}: "
        f"{result['seconds']} s ({result['tasks_per_second']} tasks/s), "
        f"{result['duplicates']} duplicates, {result['left_in_store']} left, "
        f"{result['round_trips']} round trips, {result['conflicts']} conflicts"
    )
    for node in result["per_node"]:
        print(
            f"  {node['node']}: {node['tasks']} tasks in {node['passes']} passes "
            f"(+{node['empty_passes']} empty), "
            f"{node['round_trips']} round trips {node['commands']} "
            f"(ms {node['command_ms']}), "
            f"{node['conflicts']} conflicts"
        )


if __name__ == "__main__":
    main()
