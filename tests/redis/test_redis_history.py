"""RedisStore's run history against a real redis-server: script runs per call, pruning in
bounded steps, filters past a page, odd task ids, and records shared between schedulers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores.base import call_sync
from asyncz.tasks.runs import RunRecord
from asyncz.testing import functions, wait_until
from asyncz_redis import RedisStore
from asyncz_redis._history import ADD_CHUNK, PRUNE_BUDGET
from conftest import RedisServer

pytestmark = pytest.mark.redis
UTC = timezone.utc
T0 = datetime(2030, 1, 1, tzinfo=UTC)


def record(task_id: str, seconds: float, outcome: str = "success", n: int = 0) -> RunRecord:
    at = T0 + timedelta(seconds=seconds)
    return RunRecord(
        task_id, f"{task_id}-{seconds:g}-{n}", at, outcome, submitted_at=at, finished_at=at
    )


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[RedisStore]:
    ns = f"h-{uuid.uuid4().hex[:10]}"
    store = RedisStore(
        host="127.0.0.1",
        port=redis_server.port,
        tasks_key=f"{ns}.tasks",
        run_times_key=f"{ns}.run_times",
    )
    call_sync(store, store.start(AsyncIOScheduler(), "default"))
    try:
        yield store
    finally:
        call_sync(store, store.shutdown())


def scripts_run(server: RedisServer) -> int:
    with server.client() as client:
        stats = client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def history_keys(server: RedisServer, store: RedisStore) -> list[str]:
    with server.client() as client:
        return sorted(k.decode() for k in client.keys(f"{store.tasks_key}.runs*"))


def test_each_call_is_one_script_run(redis_server: RedisServer, store: RedisStore) -> None:
    records = [record(f"t{i % 7}", i) for i in range(300)]
    before = scripts_run(redis_server)
    call_sync(store, store.add_runs(records))
    assert scripts_run(redis_server) - before == 1
    newest = call_sync(store, store.get_runs(limit=None))
    assert scripts_run(redis_server) - before == 2
    assert newest == sorted(records, key=lambda r: r.time, reverse=True)
    last = call_sync(store, store.get_last_runs([f"t{i}" for i in range(9)], ("success",)))
    assert scripts_run(redis_server) - before == 3
    assert {k: v.run_id for k, v in last.items()} == {
        f"t{i}": newest[[r.task_id for r in newest].index(f"t{i}")].run_id for i in range(7)
    }


def test_a_batch_bigger_than_a_chunk_is_split_and_all_kept(
    redis_server: RedisServer, store: RedisStore
) -> None:
    count = ADD_CHUNK * 2 + 5
    before = scripts_run(redis_server)
    call_sync(store, store.add_runs([record("big", i) for i in range(count)]))
    assert scripts_run(redis_server) - before == 3  # sent together in one pipeline
    assert len(call_sync(store, store.get_runs("big", limit=None))) == count


def test_pruning_more_than_one_budget_removes_bodies_and_indexes(
    redis_server: RedisServer, store: RedisStore
) -> None:
    old = [record(f"o{i % 3}", i) for i in range(PRUNE_BUDGET * 2 + 10)]
    fresh = [record("keep", 10_000 + i) for i in range(3)]
    call_sync(store, store.add_runs(old + fresh))
    before = scripts_run(redis_server)
    call_sync(store, store.prune_runs(T0 + timedelta(seconds=10_000), 0.5, 100))
    assert scripts_run(redis_server) - before >= 3  # bounded script runs, not one long one
    assert [r.run_id for r in call_sync(store, store.get_runs(limit=None))] == [
        r.run_id for r in reversed(fresh)
    ]
    with redis_server.client() as client:
        assert client.hlen(store.runs_key) == 3
        assert client.smembers(f"{store.runs_key}.tasks") == {b"keep"}
    assert f"{store.runs_task_prefix}o0" not in history_keys(redis_server, store)


def test_per_task_pruning_walks_every_task_when_the_limit_drops(
    redis_server: RedisServer, store: RedisStore
) -> None:
    tasks = PRUNE_BUDGET + 200
    call_sync(store, store.add_runs([record(f"t{i}", s) for s in range(3) for i in range(tasks)]))
    now = T0 + timedelta(seconds=10)
    call_sync(store, store.prune_runs(now, 3600, 3))  # nothing to drop: every task looked at
    assert len(call_sync(store, store.get_runs(limit=None))) == 3 * tasks
    call_sync(store, store.prune_runs(now, 3600, 1))  # a lower limit: every task again
    kept = call_sync(store, store.get_runs(limit=None))
    assert len(kept) == tasks
    assert {r.time for r in kept} == {T0 + timedelta(seconds=2)}
    with redis_server.client() as client:
        assert client.hlen(store.runs_key) == tasks
        assert client.zcard(store.runs_by_time_key) == tasks
    call_sync(store, store.prune_runs(now, 3600, 0))
    assert history_keys(redis_server, store) == [f"{store.runs_key}.kept"]


def test_filters_reach_past_a_page_and_stop_at_since(store: RedisStore) -> None:
    rare = record("a", 1, "error")
    call_sync(store, store.add_runs([rare, *(record("a", 10 + i) for i in range(700))]))
    assert call_sync(store, store.get_runs(limit=5, outcome="error")) == [rare]
    assert call_sync(store, store.get_runs("a", limit=None, outcome=["timeout"])) == []
    last = call_sync(store, store.get_last_runs(["a"], ("error",)))
    assert last == {"a": rare}
    since = T0 + timedelta(seconds=700)
    got = call_sync(store, store.get_runs("a", limit=None, since=since))
    assert [r.time for r in got] == [T0 + timedelta(seconds=s) for s in range(709, 699, -1)]
    assert call_sync(store, store.get_runs(limit=0)) == []


def test_task_ids_with_spaces_and_accents(store: RedisStore) -> None:
    odd = ["tâche 1", "a b c", "x"]
    call_sync(store, store.add_runs([record(t, i, n=i) for i, t in enumerate(odd * 2)]))
    assert {r.task_id for r in call_sync(store, store.get_runs("tâche 1", limit=None))} == {
        "tâche 1"
    }
    last = call_sync(store, store.get_last_runs(odd, ("success",)))
    assert {k: v.time for k, v in last.items()} == {
        t: T0 + timedelta(seconds=3 + i) for i, t in enumerate(odd)
    }
    call_sync(store, store.prune_runs(T0 + timedelta(seconds=4), 0.5, 10))
    assert [r.task_id for r in call_sync(store, store.get_runs(limit=None))] == ["x", "a b c"]


def test_removing_every_task_keeps_history(store: RedisStore) -> None:
    call_sync(store, store.add_runs([record("gone", 1)]))
    call_sync(store, store.remove_all_tasks())
    assert [r.task_id for r in call_sync(store, store.get_runs(limit=None))] == ["gone"]


def test_a_run_on_one_scheduler_is_in_the_history_another_reads(
    redis_server: RedisServer,
) -> None:
    ns = f"s-{uuid.uuid4().hex[:10]}"

    def make() -> RedisStore:
        return RedisStore(
            host="127.0.0.1",
            port=redis_server.port,
            tasks_key=f"{ns}.tasks",
            run_times_key=f"{ns}.run_times",
        )

    runner = AsyncIOScheduler(stores={"default": make()})
    reader = AsyncIOScheduler(stores={"default": make()})
    runner.start()
    reader.start(paused=True)
    try:
        runner.add_task(functions.noop, "date", run_at=datetime.now(UTC), id="once")
        wait_until(lambda: len(reader.get_task_runs("once")) == 1, what="the run in history")
        (run,) = reader.get_task_runs("once")
        assert run.outcome == "success" and run.node == runner.identity
        assert run.finished_at is not None and run.finished_at.utcoffset() is not None
    finally:
        reader.shutdown()
        runner.shutdown()
