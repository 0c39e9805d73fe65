"""Run history in the SQL store's ``<tablename>_runs`` table, beyond the contract: the schema,
one statement per batch and per ``get_last_runs``, bounded pruning, pruning by a node that did
not write the records, and a scheduler's runs recorded in the table."""

from __future__ import annotations

import uuid
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores.base import call_sync
from asyncz.tasks.runs import RUN_OUTCOMES, RunRecord
from asyncz.testing import wait_until
from asyncz_sqlalchemy import SQLAlchemyStore, _history

T = TypeVar("T")
UTC = timezone.utc
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def run(store: SQLAlchemyStore, coro: Coroutine[Any, Any, T]) -> T:
    return call_sync(store, coro)


def at(seconds: float) -> datetime:
    return datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


def record(task_id: str, seconds: float, outcome: str = "success", **fields: Any) -> RunRecord:
    values: dict[str, Any] = {
        "submitted_at": at(seconds - 1),
        "started_at": at(seconds - 0.5),
        "finished_at": at(seconds),
        "duration": 0.5,
        "lateness": 0.5,
    }
    values.update(fields)
    return RunRecord(task_id, f"{task_id}-{seconds:g}", at(seconds - 1), outcome, **values)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest) -> Iterator[SQLAlchemyStore]:
    url = request.getfixturevalue(f"{request.param}_url")
    made = SQLAlchemyStore(url, tablename=f"hist_{uuid.uuid4().hex[:8]}")
    run(made, made.start(AsyncIOScheduler(), "default"))
    try:
        yield made
    finally:
        run(made, made.shutdown())


def again(store: SQLAlchemyStore) -> SQLAlchemyStore:
    """Another store instance (another node) on the same tables."""
    other = SQLAlchemyStore(store.engine.url, tablename=store.tablename)
    run(other, other.start(AsyncIOScheduler(), "default"))
    return other


@contextmanager
def statements(store: SQLAlchemyStore) -> Iterator[list[tuple[str, bool]]]:
    """The statements the store sends meanwhile (``executemany`` flag), BEGIN left out."""
    seen: list[tuple[str, bool]] = []

    def before(conn: Any, cursor: Any, sql: str, params: Any, ctx: Any, many: bool) -> None:
        if not sql.lstrip().upper().startswith("BEGIN"):
            seen.append((sql, many))

    sa.event.listen(store.engine.sync_engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        sa.event.remove(store.engine.sync_engine, "before_cursor_execute", before)


def test_the_runs_table_has_a_column_per_field_and_its_indexes(store: SQLAlchemyStore) -> None:
    name = f"{store.tablename}_runs"
    assert store.runs_table.name == name

    async def inspect() -> tuple[set[str], list[list[str | None]]]:
        async with store.engine.connect() as conn:
            return await conn.run_sync(
                lambda c: (
                    {col["name"] for col in sa.inspect(c).get_columns(name)},
                    [i["column_names"] for i in sa.inspect(c).get_indexes(name)],
                )
            )

    columns, indexes = run(store, inspect())
    assert columns == {*RunRecord._fields, "seq", "at"}
    assert ["task_id", "at", "seq"] in indexes
    assert ["at", "seq"] in indexes


def test_runs_tablename_names_the_table(sqlite_url: str) -> None:
    store = SQLAlchemyStore(sqlite_url, runs_tablename="my_history")
    run(store, store.start(AsyncIOScheduler(), "default"))
    try:
        run(store, store.add_runs([record("a", 1)]))
        engine = sa.create_engine(sqlite_url)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT run_id FROM my_history").scalars().all() == ["a-1"]
        engine.dispose()
    finally:
        run(store, store.shutdown())


def test_a_batch_is_one_statement_and_last_runs_one_query(store: SQLAlchemyStore) -> None:
    batch = [record(f"t{i % 300}", i) for i in range(600)]
    with statements(store) as seen:
        run(store, store.add_runs(batch))
    assert len(seen) == 1 and seen[0][0].lstrip().upper().startswith("INSERT")
    # More ids than either backend takes bound parameters (32,766 / 32,767): still one.
    ids = [f"t{i}" for i in range(300)] + [f"unknown{i}" for i in range(33_000)]
    with statements(store) as seen:
        last = run(store, store.get_last_runs(ids, RUN_OUTCOMES))
    assert len(seen) == 1
    assert {k: v.run_id for k, v in last.items()} == {
        f"t{i}": f"t{i}-{i + 300}" for i in range(300)
    }


def test_records_that_never_ran_and_notes_keep_every_field(store: SQLAlchemyStore) -> None:
    missed = RunRecord("m", "m-1", at(0), "missed", submitted_at=at(5), lateness=5.0, node="n")
    paused = RunRecord("m", "m-2", at(3), "paused", source="manual", note="maintenance")
    ran = record("m", 4, "error", error_type="ValueError", traceback="x" * 5000, attempt=3)
    run(store, store.add_runs([missed, paused, ran]))
    # Ordered by the record's time: finished_at, else submitted_at, else the scheduled time.
    assert run(store, store.get_runs("m")) == [missed, ran, paused]
    assert run(store, store.get_last_runs(["m"], RUN_OUTCOMES)) == {"m": missed}
    assert run(store, store.get_last_runs(["m"], ("error",))) == {"m": ran}


def test_pruning_deletes_in_bounded_statements(
    store: SQLAlchemyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_history, "PRUNE_BATCH", 3)
    run(store, store.add_runs([record("old", i) for i in range(10)]))
    run(store, store.add_runs([record("busy", 100 + i) for i in range(8)]))
    with statements(store) as seen:
        run(store, store.prune_runs(at(110), 50.0, 2))
    deletes = [sql for sql, _ in seen if sql.lstrip().upper().startswith("DELETE")]
    # By age: 3 + 3 + 3 + 1 rows; per task: 3 + 3 + 0.
    assert len(deletes) == 7
    assert [r.run_id for r in run(store, store.get_runs(limit=None))] == ["busy-107", "busy-106"]


def test_a_node_that_did_not_write_the_records_prunes_them(store: SQLAlchemyStore) -> None:
    run(store, store.add_runs([record("a", i) for i in range(6)]))
    other = again(store)
    try:
        # Its first prune ranks the whole table.
        run(other, other.prune_runs(at(10), 3600.0, 4))
        assert len(run(store, store.get_runs("a", limit=None))) == 4
        # Afterwards only the tasks it wrote records of, unless max_per_task changes.
        run(store, store.add_runs([record("b", 20 + i) for i in range(5)]))
        run(other, other.prune_runs(at(30), 3600.0, 4))
        assert len(run(store, store.get_runs("b", limit=None))) == 5
        run(other, other.prune_runs(at(30), 3600.0, 3))
        assert len(run(store, store.get_runs("b", limit=None))) == 3
        run(store, store.add_runs([record("b", 40 + i) for i in range(5)]))
        run(store, store.prune_runs(at(50), 3600.0, 3))
        assert [r.run_id for r in run(store, store.get_runs("b", limit=None))] == [
            "b-44",
            "b-43",
            "b-42",
        ]
    finally:
        run(other, other.shutdown())


def test_a_scheduler_records_its_runs_in_the_table(store: SQLAlchemyStore) -> None:
    url, table = store.engine.url, store.tablename
    scheduler = AsyncIOScheduler(
        stores={"default": SQLAlchemyStore(url, tablename=table)}, timezone="UTC"
    )
    scheduler.start()
    try:
        now = datetime.now(UTC)
        scheduler.add_task(pow, "interval", hours=1, next_run_time=now, args=[2, 5], id="p")
        scheduler.add_task(divmod, "interval", hours=1, next_run_time=now, args=[1, 0], id="z")
        wait_until(lambda: len(run(store, store.get_runs(limit=None))) >= 2, timeout=20)
        runs = {r.task_id: r for r in run(store, store.get_runs(limit=None))}
        assert runs["p"].outcome == "success" and runs["p"].return_repr == "32"
        assert runs["z"].error_type == "ZeroDivisionError"
        assert runs["p"].node == scheduler.identity
        assert scheduler.get_task_info("z").last_run.outcome == "error"
    finally:
        scheduler.shutdown()
