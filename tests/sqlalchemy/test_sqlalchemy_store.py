"""What the SQL store adds to the contract: URLs, schema, SQLite sharing, PostgreSQL claims
and a server restart under a running scheduler."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Coroutine
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

from asyncz.exceptions import ConflictingIdError
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores.base import call_sync
from asyncz.testing import functions, make_task, wait_until
from asyncz_sqlalchemy import SQLAlchemyStore, async_url
from asyncz_sqlalchemy.testing import TemporaryPostgres

T = TypeVar("T")
UTC = timezone.utc
HERE = Path(__file__).parent


def run(store: SQLAlchemyStore, coro: Coroutine[Any, Any, T]) -> T:
    return call_sync(store, coro)


def started(store: SQLAlchemyStore) -> SQLAlchemyStore:
    run(store, store.start(AsyncIOScheduler(), "default"))
    return store


def at(seconds: float) -> datetime:
    return datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


# -- URLs and construction ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///jobs.db", "sqlite+aiosqlite:///jobs.db"),
        ("sqlite://", "sqlite+aiosqlite://"),
        ("sqlite+pysqlite:////abs/jobs.db", "sqlite+aiosqlite:////abs/jobs.db"),
        ("sqlite+aiosqlite:///jobs.db", "sqlite+aiosqlite:///jobs.db"),
        ("postgresql://u:p@h:5/db", "postgresql+asyncpg://u:p@h:5/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+psycopg2://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_plain_urls_map_to_async_drivers(given: str, expected: str) -> None:
    assert async_url(given).render_as_string(hide_password=False) == expected


def test_construction_does_not_connect_or_start_a_thread(tmp_path: Path) -> None:
    store = SQLAlchemyStore(database=f"sqlite:///{tmp_path / 'never.db'}")
    assert not (tmp_path / "never.db").exists()
    assert store.io_loop is None  # the scheduler gives it its I/O loop when it starts
    with pytest.raises(TypeError, match="database"):
        SQLAlchemyStore()
    with pytest.raises(TypeError, match="not both"):
        SQLAlchemyStore("sqlite://", url="sqlite://")
    with pytest.raises(ValueError, match="poll_interval"):
        SQLAlchemyStore("sqlite://", poll_interval=0)
    # The claims of the earlier store took this option; the lease is the scheduler's now.
    with pytest.raises(TypeError, match=r"asyncz\.coordination\.lease"):
        SQLAlchemyStore("sqlite://", claim_timeout=60)


def test_poll_interval_defaults_to_polling_only_where_there_are_no_notifications() -> None:
    assert SQLAlchemyStore("sqlite:///x.db").poll_interval == 1.0
    assert SQLAlchemyStore("postgresql+asyncpg://u@h/db").poll_interval is None
    assert SQLAlchemyStore("postgresql+psycopg://u@h/db").poll_interval == 1.0
    assert SQLAlchemyStore("sqlite:///x.db", poll_interval=None).poll_interval is None
    assert SQLAlchemyStore("postgresql://u@h/db", poll_interval="3").poll_interval == 3.0


def test_url_keyword_engine_options_and_engines(tmp_path: Path) -> None:
    store = SQLAlchemyStore(url=f"sqlite:///{tmp_path / 'a.db'}", tablename="t", echo=False)
    assert store.engine.url.drivername == "sqlite+aiosqlite"
    sync_engine = sa.create_engine(f"sqlite:///{tmp_path / 'b.db'}")
    assert SQLAlchemyStore(sync_engine).engine.url.drivername == "sqlite+aiosqlite"
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    given = started(SQLAlchemyStore(engine))
    try:
        run(given, given.add_task(make_task("x", at(1))))
        assert run(given, given.lookup_task("x")) is not None
    finally:
        run(given, given.shutdown())


def test_configuration_alone_and_the_core_shim(tmp_path: Path) -> None:
    from asyncz.stores.sqlalchemy import SQLAlchemyStore as FromShim

    assert FromShim is SQLAlchemyStore
    url = f"sqlite:///{tmp_path / 'conf.db'}"
    for alias in ("sqlalchemy", "sqlite"):
        scheduler = AsyncIOScheduler(
            stores={"default": {"type": alias, "database": url, "tablename": f"t_{alias}"}}
        )
        store = scheduler.stores["default"]
        assert isinstance(store, SQLAlchemyStore)
        assert store.tablename == f"t_{alias}"
    scheduler = AsyncIOScheduler(
        global_config={
            "asyncz.stores.default": {"type": "sqlalchemy", "database": url, "poll_interval": "2"}
        }
    )
    configured = scheduler.stores["default"]
    assert isinstance(configured, SQLAlchemyStore)
    assert configured.poll_interval == 2


# -- schema ---------------------------------------------------------------------------------
def _columns(store: SQLAlchemyStore) -> dict[str, Any]:
    async def inspect() -> dict[str, Any]:
        async with store.engine.connect() as conn:
            return await conn.run_sync(
                lambda c: {col["name"]: col for col in sa.inspect(c).get_columns(store.tablename)}
            )

    return run(store, inspect())


def _indexes(store: SQLAlchemyStore) -> list[list[str | None]]:
    async def inspect() -> list[list[str | None]]:
        async with store.engine.connect() as conn:
            return await conn.run_sync(
                lambda c: [i["column_names"] for i in sa.inspect(c).get_indexes(store.tablename)]
            )

    return run(store, inspect())


def _check_schema(store: SQLAlchemyStore) -> None:
    columns = _columns(store)
    assert set(columns) == {
        "id", "next_run_time", "payload", "format_version", "broken", "revision",
        "lease_owner", "lease_until", "due_at",
    }  # fmt: skip
    assert not columns["id"]["nullable"]
    assert columns["next_run_time"]["nullable"]
    assert isinstance(columns["next_run_time"]["type"], (sa.Double, sa.Float))
    assert isinstance(columns["payload"]["type"], sa.LargeBinary)
    assert not columns["payload"]["nullable"]
    assert isinstance(columns["format_version"]["type"], sa.SmallInteger)
    assert ["next_run_time"] in _indexes(store)
    assert ["due_at"] in _indexes(store)
    assert not columns["revision"]["nullable"]
    # Sub-second next run times survive the column (a float, not an integer).
    run(store, store.add_task(make_task("frac", at(0.25))))
    assert run(store, store.get_next_run_time()) == at(0.25)


def test_sqlite_schema_wal_and_busy_timeout(sqlite_url: str) -> None:
    store = started(SQLAlchemyStore(sqlite_url, busy_timeout=7))
    try:
        _check_schema(store)

        async def pragmas() -> tuple[str, int]:
            async with store.engine.connect() as conn:
                mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
                busy = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar()
                return str(mode), int(str(busy))

        assert run(store, pragmas()) == ("wal", 7000)
    finally:
        run(store, store.shutdown())


def test_a_table_of_another_shape_is_refused_with_a_pointer_to_migration(
    sqlite_url: str,
) -> None:
    engine = sa.create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE asyncz_store (id VARCHAR(191) PRIMARY KEY, next_run_time FLOAT, "
            "job_state BLOB NOT NULL)"
        )
    engine.dispose()
    store = SQLAlchemyStore(sqlite_url)
    with pytest.raises(RuntimeError, match="Migrating the table"):
        started(store)
    run(store, store.shutdown())


# -- SQLite shared by several processes ------------------------------------------------------
_WORKER = textwrap.dedent(
    """
    import sys, time
    from asyncz.schedulers.asyncio import AsyncIOScheduler
    from asyncz_sqlalchemy import SQLAlchemyStore

    url, seconds = sys.argv[1], float(sys.argv[2])
    store = SQLAlchemyStore(url, poll_interval=0.05, busy_timeout=30)
    scheduler = AsyncIOScheduler(stores={"default": store})
    scheduler.start()
    print("ready", flush=True)
    time.sleep(seconds)
    scheduler.shutdown()
    """
)


@pytest.mark.slow
def test_processes_sharing_one_sqlite_file_run_each_due_run_once(
    tmp_path: Path, sqlite_url: str
) -> None:
    out = tmp_path / "runs.txt"
    count = 150
    seed = started(SQLAlchemyStore(sqlite_url))
    try:
        now = datetime.now(UTC) + timedelta(seconds=1.5)
        tasks = [
            make_task(
                f"p{i:03d}",
                now + timedelta(milliseconds=5 * i),
                fn="sqla_helpers:mark",
                trigger="date",
                run_at=now + timedelta(milliseconds=5 * i),
                args=(str(out), f"p{i:03d}"),
                misfire_grace_time=None,
            )
            for i in range(count)
        ]
        run(seed, seed.add_tasks(tasks))
    finally:
        run(seed, seed.shutdown())
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, sqlite_url, "4"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    errors = [w.communicate(timeout=60)[1] for w in workers]
    assert all(w.returncode == 0 for w in workers), errors
    lines = out.read_text().split()
    keys = Counter(lines[0::2])
    assert len(keys) == count, f"missing runs: {count - len(keys)}"
    assert max(keys.values()) == 1, f"runs taken twice: {[k for k, n in keys.items() if n > 1]}"
    # Which process takes which run depends on timing (one may take them all): only
    # "exactly once" is the contract.
    print(f"{count} runs checked, taken by {len(set(lines[1::2]))} process(es)")
    check = started(SQLAlchemyStore(sqlite_url))
    try:
        assert run(check, check.get_all_tasks()) == []  # date tasks removed once run
    finally:
        run(check, check.shutdown())


# -- PostgreSQL -----------------------------------------------------------------------------
@pytest.mark.postgres
def test_postgres_schema(postgres_url: str) -> None:
    store = started(SQLAlchemyStore(postgres_url, tablename="schema_check"))
    try:
        _check_schema(store)
        columns = _columns(store)
        assert str(columns["payload"]["type"].compile(dialect=store.engine.dialect)) == "BYTEA"
        assert "DOUBLE" in str(
            columns["next_run_time"]["type"].compile(dialect=store.engine.dialect)
        )
    finally:
        run(store, store.remove_all_tasks())
        run(store, store.shutdown())


@pytest.mark.postgres
def test_two_stores_never_claim_the_same_due_task(postgres_url: str) -> None:
    table = f"claims_{os.getpid()}"
    first = started(SQLAlchemyStore(postgres_url, tablename=table))
    second = started(SQLAlchemyStore(postgres_url, tablename=table))
    try:
        run(first, first.add_tasks([make_task(f"c{i:03d}", at(i)) for i in range(200)]))
        results: dict[str, list[str]] = {}

        def grab(name: str, store: SQLAlchemyStore) -> None:
            taken: list[str] = []
            while True:
                batch = run(store, store.acquire_due_tasks(name, at(1000), 3600, 7))
                if not batch:
                    break
                taken.extend(t.id for t in batch)
                for task in batch:  # processed: the next run is far away
                    task.next_run_time = at(10**6)
                assert run(store, store.release_tasks(name, batch)) == batch
            results[name] = taken

        threads = [
            threading.Thread(target=grab, args=("first", first)),
            threading.Thread(target=grab, args=("second", second)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        a, b = results["first"], results["second"]
        assert not set(a) & set(b)
        assert len(a) + len(b) == 200
        # Released with their new next run time: nothing is due any more, nothing is held.
        assert run(second, second.get_next_run_time()) == at(10**6)
    finally:
        run(first, first.remove_all_tasks())
        run(first, first.shutdown())
        run(second, second.shutdown())


@pytest.mark.postgres
@pytest.mark.slow
def test_a_postgres_restart_under_a_running_scheduler_loses_nothing(
    postgres_server: TemporaryPostgres, postgres_url: str
) -> None:
    key = f"pg-restart-{os.getpid()}"
    functions.reset(key)
    store = SQLAlchemyStore(postgres_url, tablename="restart_check")
    scheduler = AsyncIOScheduler(stores={"default": store}, isolated_event_loop=True)
    scheduler.start()
    try:
        scheduler.remove_all_tasks()
        scheduler.add_task(functions.record, "interval", seconds=0.2, args=(key,), id="tick")
        for i in range(20):
            scheduler.add_task(functions.noop, "interval", hours=1, id=f"keep{i}")
        wait_until(lambda: functions.calls(key) >= 3, what="runs before the restart")
        postgres_server.restart()
        before = functions.calls(key)
        wait_until(lambda: functions.calls(key) >= before + 5, timeout=30, what="runs after")
        ids = {t.id for t in scheduler.get_tasks()}
        assert ids == {"tick"} | {f"keep{i}" for i in range(20)}
        scheduler.add_task(functions.noop, "interval", hours=1, id="after")
        assert scheduler.get_task("after") is not None
    finally:
        if not postgres_server.running:
            postgres_server.start()
        scheduler.remove_all_tasks()
        scheduler.shutdown()


@pytest.mark.postgres
def test_a_write_back_lost_to_an_outage_is_neither_lost_nor_rerun(
    postgres_server: TemporaryPostgres, postgres_url: str
) -> None:
    store = started(SQLAlchemyStore(postgres_url, tablename="outage_check"))
    try:
        run(store, store.add_task(make_task("o", at(1))))
        (due,) = run(store, store.acquire_due_tasks("node", at(5), 10.0, 10))
        due.next_run_time = at(100)
        postgres_server.stop()
        try:
            with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises
                run(store, store.release_tasks("node", [due]))
        finally:
            postgres_server.start()
        # The scheduler submits nothing for a refused write-back; the claim still holds the
        # run (no other pass takes it) until the lease ends, then the run is due again.
        assert run(store, store.acquire_due_tasks("node", at(6), 10.0, 10)) == []
        assert run(store, store.get_next_run_time()) == at(15)
        (again,) = run(store, store.acquire_due_tasks("other", at(16), 10.0, 10))
        assert again.next_run_time == at(1)
    finally:
        run(store, store.remove_all_tasks())
        run(store, store.shutdown())


def test_unrestorable_rows_get_another_chance_after_a_restart(sqlite_url: str) -> None:
    store = started(SQLAlchemyStore(sqlite_url))
    try:
        run(store, store.add_task(make_task("fix", at(1))))
        good = store.encode_task(make_task("fix", at(1)))

        async def corrupt(payload: bytes) -> None:
            async with store.engine.begin() as conn:
                await conn.execute(
                    sa.update(store.table).where(store.table.c.id == "fix").values(payload=payload)
                )

        run(store, corrupt(b"garbage"))
        assert run(store, store.get_due_tasks(at(5))) == []
        assert set(run(store, store.get_unrestorable())) == {"fix"}
        run(store, corrupt(good))  # the missing code was deployed
        run(store, store.shutdown())
        started(store)
        assert run(store, store.get_unrestorable()) == {}
        assert [t.id for t in run(store, store.get_due_tasks(at(5)))] == ["fix"]
    finally:
        run(store, store.shutdown())


def test_store_methods_work_from_a_coroutine_on_another_loop(sqlite_url: str) -> None:
    from asyncz.stores.base import call

    store = started(SQLAlchemyStore(sqlite_url))
    try:

        async def main() -> list[str]:
            await call(store, store.add_task(make_task("a", at(1))))
            return [t.id for t in await call(store, store.get_all_tasks())]

        assert asyncio.run(main()) == ["a"]
    finally:
        run(store, store.shutdown())


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_bulk_add_stops_at_the_first_conflicting_id(
    kind: str, request: pytest.FixtureRequest
) -> None:
    # Rows before the conflict are stored, none after it (also across insert chunks), and
    # the existing task is left as it was.
    url = request.getfixturevalue("sqlite_url" if kind == "sqlite" else "postgres_url")
    store = started(SQLAlchemyStore(url, tablename=f"bulk_{os.getpid()}_{kind}"))
    try:
        run(store, store.add_task(make_task("exists", at(50))))
        batch = [make_task(f"a{i:04d}", at(i)) for i in range(1200)]
        batch += [make_task("exists", at(1)), make_task("after", at(2))]
        batch += [make_task(f"z{i:04d}", at(i)) for i in range(900)]
        with pytest.raises(ConflictingIdError, match="exists"):
            run(store, store.add_tasks(batch))
        stored = {task.id for task in run(store, store.get_all_tasks())}
        assert stored == {"exists"} | {f"a{i:04d}" for i in range(1200)}
        found = run(store, store.lookup_task("exists"))
        assert found is not None and found.next_run_time == at(50)
        with pytest.raises(ConflictingIdError, match="dup"):
            run(store, store.add_tasks([make_task("dup", at(3)), make_task("dup", at(4))]))
        found = run(store, store.lookup_task("dup"))
        assert found is not None and found.next_run_time == at(3)
    finally:
        run(store, store.remove_all_tasks())
        run(store, store.shutdown())
