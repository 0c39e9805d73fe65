"""MongoDBStore run history beyond the contract: the collection and its indexes, round trips
per batch and per ``get_last_runs``, records that never ran, pruning in bounded deletes, by
another node and per task only where this instance wrote."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from test_mongo_store import UTC, Commands, Harness, at

import asyncz_mongo._history as history
from asyncz.tasks.runs import RunRecord

pytestmark = pytest.mark.mongo


@pytest.fixture
def harness(mongo_url: str) -> Iterator[Harness]:
    harness = Harness(mongo_url)
    try:
        yield harness
    finally:
        harness.close()


def record(task_id: str, seconds: float, outcome: str = "success") -> RunRecord:
    end = at(seconds)
    return RunRecord(
        task_id,
        f"{task_id}-{seconds:g}",
        end - timedelta(seconds=1),
        outcome,
        submitted_at=end - timedelta(seconds=1),
        started_at=end - timedelta(seconds=0.25),
        finished_at=end,
        duration=0.25,
        lateness=0.75,
        node="node-a",
        executor="default",
    )


def runs_of(harness: Harness) -> list[dict[str, object]]:
    raw = harness.raw()
    return list(raw.database[f"{harness.collection}.runs"].find({}).sort("at", -1))


def test_the_runs_collection_and_its_indexes(harness: Harness) -> None:
    store = harness.store()
    assert store.keeps_history
    harness.run(store.add_runs([record("a", 1)]), store)
    runs = harness.raw().database[f"{harness.collection}.runs"]
    keys = [spec["key"] for spec in runs.index_information().values()]
    assert [("task_id", 1), ("at", -1)] in keys, keys
    assert [("at", 1)] in keys, keys
    (doc,) = runs_of(harness)
    assert doc["task_id"] == "a" and doc["outcome"] == "success"
    assert doc["at"] == at(1).timestamp() == doc["finished_at"]
    assert doc["scheduled_run_time"] == at(0).timestamp()


def test_a_batch_is_one_insert_and_last_runs_one_aggregation(harness: Harness) -> None:
    commands = Commands()
    store = harness.store(event_listeners=[commands])
    records = [record(f"t{i % 30}", i, "error" if i % 7 == 0 else "success") for i in range(120)]
    harness.run(store.get_runs(limit=1), store)  # connected and prepared
    commands.names.clear()
    harness.run(store.add_runs(records), store)
    assert commands.names == ["insert"]
    commands.names.clear()
    last = harness.run(store.get_last_runs([f"t{i}" for i in range(40)], ("error",)), store)
    assert commands.names == ["aggregate"]
    expected = {}
    for r in records:  # oldest to newest: the last one of each task wins
        if r.outcome == "error":
            expected[r.task_id] = r
    assert last == expected


def test_records_that_never_ran_are_ordered_by_submission(harness: Harness) -> None:
    store = harness.store()
    missed = RunRecord("m", "m-1", at(0), "missed", submitted_at=at(5), node="node-a")
    coalesced = RunRecord("m", "m-2", at(1), "coalesced")  # no submission time either
    harness.run(store.add_runs([record("m", 3), missed, coalesced]), store)
    got = harness.run(store.get_runs("m", limit=None), store)
    assert got == [missed, record("m", 3), coalesced]
    assert got[0].started_at is None and got[0].submitted_at == at(5)
    assert harness.run(store.get_runs("m", limit=0), store) == []


def test_one_run_id_given_twice_is_kept_twice(harness: Harness) -> None:
    store = harness.store()
    harness.run(store.add_runs([record("d", 1)]), store)
    harness.run(store.add_runs([record("d", 1)]), store)
    assert harness.run(store.get_runs("d", limit=None), store) == [record("d", 1)] * 2


def test_pruning_deletes_in_bounded_batches(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history, "PRUNE_BATCH", 7)
    commands = Commands()
    store = harness.store(event_listeners=[commands])
    harness.run(store.add_runs([record(f"p{i % 3}", i) for i in range(60)]), store)
    commands.names.clear()
    harness.run(store.prune_runs(at(60), 3600.0, 5), store)
    # By age (nothing), one aggregation, 45 records past the limit in deletes of 7 at most.
    assert commands.names == ["delete", "aggregate", *["delete"] * 7]
    left = harness.run(store.get_runs(limit=None), store)
    assert [r.run_id for r in left] == [f"p{i % 3}-{i}" for i in range(59, 44, -1)]


def test_a_node_prunes_every_task_first_then_those_it_wrote(harness: Harness) -> None:
    writer, pruner = harness.store(), harness.store()
    harness.run(writer.add_runs([record("w", i) for i in range(10)]), writer)
    # The first prune of an instance sweeps every task, records of other nodes too.
    harness.run(pruner.prune_runs(at(10), 3600.0, 4), pruner)
    assert len(harness.run(pruner.get_runs("w", limit=None), pruner)) == 4
    # Later prunes visit only the tasks the instance wrote records of since.
    harness.run(writer.add_runs([record("w", 10 + i) for i in range(5)]), writer)
    harness.run(pruner.add_runs([record("p", i) for i in range(6)]), pruner)
    harness.run(pruner.prune_runs(at(20), 3600.0, 4), pruner)
    assert len(harness.run(pruner.get_runs("p", limit=None), pruner)) == 4
    assert len(harness.run(pruner.get_runs("w", limit=None), pruner)) == 9
    # ... and each node prunes what it wrote; a new max_per_task sweeps everything again.
    harness.run(writer.prune_runs(at(20), 3600.0, 4), writer)
    w = harness.run(writer.get_runs("w", limit=None), writer)
    assert [r.run_id for r in w] == [f"w-{i}" for i in (14, 13, 12, 11)]
    harness.run(pruner.prune_runs(at(20), 3600.0, 2), pruner)
    assert len(harness.run(pruner.get_runs(limit=None), pruner)) == 4


def test_pruning_by_age_uses_the_record_time(harness: Harness) -> None:
    store = harness.store()
    harness.run(store.add_runs([record("a", i) for i in range(10)]), store)
    harness.run(store.prune_runs(at(10), 4.5, 100), store)
    got = harness.run(store.get_runs(limit=None, since=datetime(2000, 1, 1, tzinfo=UTC)), store)
    assert [r.run_id for r in got] == [f"a-{i}" for i in range(9, 5, -1)]
