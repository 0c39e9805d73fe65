"""The synchronous insert path of the SQL store (``add_task_sync``): a synchronous
``add_task`` on a running scheduler writes from the calling thread, on SQLite and PostgreSQL,
and what it writes is what the async path reads."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Coroutine
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from asyncz.exceptions import ConflictingIdError
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores.base import call, call_sync
from asyncz.tasks import Task
from asyncz.testing import functions, make_task, wait_until
from asyncz_sqlalchemy import SQLAlchemyStore
from asyncz_sqlalchemy._sync import sync_url
from asyncz_sqlalchemy.testing import TemporaryPostgres

T = TypeVar("T")
UTC = timezone.utc


def run(store: SQLAlchemyStore, coro: Coroutine[Any, Any, T]) -> T:
    return call_sync(store, coro)


def at(seconds: float) -> datetime:
    return datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


def fresh_table() -> str:
    return f"sync_{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


class AsyncAdds:
    """Counts the store's async ``add_task`` calls (the thread-hop path)."""

    def __init__(self, store: SQLAlchemyStore) -> None:
        self.ids: list[str] = []
        original = store.add_task

        async def counting(task: Task) -> None:
            self.ids.append(task.id)
            await original(task)

        store.add_task = counting  # type: ignore[method-assign]


def started(store: SQLAlchemyStore) -> SQLAlchemyStore:
    run(store, store.start(AsyncIOScheduler(), "default"))
    return store


def _rows(store: SQLAlchemyStore) -> dict[str, dict[str, Any]]:
    async def select() -> dict[str, dict[str, Any]]:
        async with store.engine.connect() as conn:
            result = await conn.execute(sa.select(store.table))
            return {row.id: dict(row._mapping) for row in result}

    return run(store, select())


# -- through the scheduler --------------------------------------------------------------------
def test_a_sync_add_on_the_schedulers_loop_is_read_by_the_async_path_and_runs(url: str) -> None:
    key = f"sync-run-{uuid.uuid4().hex}"
    store = SQLAlchemyStore(url, tablename=fresh_table())
    hops = AsyncAdds(store)

    async def main() -> None:
        # Started inside this loop: the scheduler's own loop is the one adding, as in the
        # store-add benchmark.
        scheduler = AsyncIOScheduler(stores={"default": store})
        scheduler.start()
        try:
            scheduler.add_task(functions.record, "interval", seconds=0.2, args=(key,), id="tick")
            scheduler.add_task(functions.noop, "interval", hours=1, id="later", kwargs={"a": 1})
            assert hops.ids == [], "the synchronous add took the thread hop"
            assert store._inserter is not None
            stored = await call(store, store.lookup_task("later"))
            assert stored is not None
            assert stored.kwargs == {"a": 1}
            assert stored.store_alias == "default"
            assert [t.id for t in await call(store, store.get_all_tasks())] == ["tick", "later"]
            assert {t.id for t in scheduler.get_tasks()} == {"tick", "later"}
            deadline = asyncio.get_running_loop().time() + 15
            while functions.calls(key) < 2:
                assert asyncio.get_running_loop().time() < deadline, "the task never ran"
                await asyncio.sleep(0.05)
        finally:
            await call(store, store.remove_all_tasks())
            await scheduler.shutdown_async()

    try:
        asyncio.run(main())
    finally:
        functions.reset(key)
    assert store._inserter is None  # closed by shutdown


def test_a_sync_add_from_another_thread_and_a_duplicate_id(url: str) -> None:
    key = f"sync-thread-{uuid.uuid4().hex}"
    store = SQLAlchemyStore(url, tablename=fresh_table())
    hops = AsyncAdds(store)
    scheduler = AsyncIOScheduler(stores={"default": store}, isolated_event_loop=True)
    scheduler.start()
    try:
        scheduler.add_task(functions.record, "date", run_at=datetime.now(UTC), args=(key,), id="d")
        wait_until(lambda: functions.calls(key) == 1, what="the date task ran")
        scheduler.add_task(functions.noop, "interval", hours=1, id="dup")
        with pytest.raises(ConflictingIdError, match="'dup'") as caught:
            scheduler.add_task(functions.noop, "interval", hours=2, id="dup")
        assert caught.value.task_id == "dup"
        assert hops.ids == []
        kept = scheduler.get_task("dup")
        assert kept is not None
        assert kept.trigger.interval == timedelta(hours=1)  # the first one stays
        # replace_existing is an upsert: the scheduler takes the async path for it.
        scheduler.add_task(functions.noop, "interval", hours=3, id="dup", replace_existing=True)
        replaced = scheduler.get_task("dup")
        assert replaced is not None
        assert replaced.trigger.interval == timedelta(hours=3)
    finally:
        scheduler.remove_all_tasks()
        scheduler.shutdown()
        functions.reset(key)


# -- the store method -------------------------------------------------------------------------
def test_rows_written_by_both_paths_have_the_same_shape(url: str) -> None:
    store = started(SQLAlchemyStore(url, tablename=fresh_table()))
    try:
        for suffix, when in (("due", at(1.25)), ("paused", None)):
            run(store, store.add_task(make_task(f"async-{suffix}", when, args=(1, "x"))))
            assert store.add_task_sync(make_task(f"sync-{suffix}", when, args=(1, "x")))
        rows = _rows(store)
        for suffix in ("due", "paused"):
            by_async, by_sync = rows[f"async-{suffix}"], rows[f"sync-{suffix}"]
            assert {k: v for k, v in by_sync.items() if k not in ("id", "payload")} == {
                k: v for k, v in by_async.items() if k not in ("id", "payload")
            }
            assert bytes(by_sync["payload"]).replace(b"sync-", b"async-") == bytes(
                by_async["payload"]
            )
        assert rows["sync-due"]["next_run_time"] == at(1.25).timestamp()
        assert rows["sync-due"]["broken"] is None
        assert rows["sync-due"]["lease_owner"] is None
        assert rows["sync-due"]["due_at"] == at(1.25).timestamp()
        assert rows["sync-due"]["revision"] == 1
        assert rows["sync-paused"]["next_run_time"] is None
        assert rows["sync-paused"]["due_at"] is None
        # Due through the sync path like any other task (claimed, restored).
        due = run(store, store.acquire_due_tasks("node", at(2), 10.0, 10))
        assert [t.id for t in due] == ["async-due", "sync-due"]
        assert due[1].args == (1, "x")
        assert due[1].revision == 1
    finally:
        run(store, store.remove_all_tasks())
        run(store, store.shutdown())


def test_duplicates_against_either_path_name_the_id(url: str) -> None:
    store = started(SQLAlchemyStore(url, tablename=fresh_table()))
    try:
        run(store, store.add_task(make_task("by-async", at(1))))
        assert store.add_task_sync(make_task("by-sync", at(2)))
        for task_id in ("by-async", "by-sync"):
            with pytest.raises(ConflictingIdError, match=f"'{task_id}'") as caught:
                store.add_task_sync(make_task(task_id, at(3)))
            assert caught.value.task_id == task_id
        with pytest.raises(ConflictingIdError, match="by-sync"):
            run(store, store.add_task(make_task("by-sync", at(3))))
        # The connection is still good after a refused insert.
        assert store.add_task_sync(make_task("after", at(4)))
        assert sorted(_rows(store)) == ["after", "by-async", "by-sync"]
        assert _rows(store)["by-sync"]["next_run_time"] == at(2).timestamp()
    finally:
        run(store, store.remove_all_tasks())
        run(store, store.shutdown())


def test_concurrent_sync_adds_from_many_threads(url: str) -> None:
    store = started(SQLAlchemyStore(url, tablename=fresh_table()))
    errors: list[BaseException] = []
    conflicts: list[str] = []

    def add(worker: int) -> None:
        try:
            for i in range(40):
                assert store.add_task_sync(make_task(f"w{worker}-{i:02d}", at(i)))
                try:  # every worker also races for one shared id
                    store.add_task_sync(make_task(f"shared-{i:02d}", at(i)))
                except ConflictingIdError as exc:
                    conflicts.append(exc.task_id)
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=add, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        rows = _rows(store)
        assert len(rows) == 4 * 40 + 40
        assert len(conflicts) == 3 * 40  # one winner per shared id
        assert store._inserter is not None
        assert store._inserter.engine.pool.checkedout() == 1  # only the kept connection
    finally:
        run(store, store.remove_all_tasks())
        run(store, store.shutdown())


def test_not_before_start_nor_after_shutdown_and_the_engine_is_disposed(url: str) -> None:
    store = SQLAlchemyStore(url, tablename=fresh_table())
    assert not store.add_task_sync(make_task("early", at(1)))  # the table may not exist yet
    started(store)
    try:
        assert store.add_task_sync(make_task("a", at(1)))
        inserter = store._inserter
        assert inserter is not None
        assert inserter.engine.pool.checkedout() == 1
    finally:
        run(store, store.remove_all_tasks())
        run(store, store.shutdown())
    assert store._inserter is None
    assert inserter.engine.pool.checkedout() == 0
    assert not store.add_task_sync(make_task("late", at(1)))
    # Started again, it makes a new engine.
    started(store)
    try:
        assert store.add_task_sync(make_task("b", at(1)))
        assert store._inserter is not inserter
        assert [t.id for t in run(store, store.get_all_tasks())] == ["b"]
    finally:
        run(store, store.remove_all_tasks())
        run(store, store.shutdown())


def test_the_sqlite_sync_connection_gets_the_async_engines_setup(sqlite_url: str) -> None:
    store = started(SQLAlchemyStore(sqlite_url, busy_timeout=7))
    try:
        assert store.add_task_sync(make_task("a", at(1)))
        inserter = store._inserter
        assert inserter is not None
        assert inserter.engine.url.drivername == "sqlite+pysqlite"
        conn = inserter.engine.raw_connection()
        try:
            cursor = conn.cursor()
            pragmas = [
                cursor.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("journal_mode", "busy_timeout", "synchronous")
            ]
            cursor.close()
        finally:
            conn.close()
        assert pragmas == ["wal", 7000, 1]  # synchronous=NORMAL, as the async engine's
    finally:
        run(store, store.shutdown())


def test_a_given_async_engine_of_a_known_driver(sqlite_url: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(sqlite_url.replace("sqlite:", "sqlite+aiosqlite:"))
    store = started(SQLAlchemyStore(engine))
    try:
        assert store.add_task_sync(make_task("given", at(1)))
        assert run(store, store.lookup_task("given")) is not None
    finally:
        run(store, engine.dispose())  # on the loop its connections belong to
        run(store, store.shutdown())


def test_an_in_memory_sqlite_database_has_no_sync_path() -> None:
    store = started(SQLAlchemyStore("sqlite://"))
    try:
        assert not store.add_task_sync(make_task("m", at(1)))
        assert store._inserter is None
    finally:
        run(store, store.shutdown())


@pytest.mark.postgres
def test_a_lost_postgres_connection_falls_back_then_reconnects(
    postgres_server: TemporaryPostgres, postgres_url: str
) -> None:
    store = SQLAlchemyStore(postgres_url, tablename=fresh_table())
    hops = AsyncAdds(store)
    scheduler = AsyncIOScheduler(stores={"default": store}, isolated_event_loop=True)
    scheduler.start()
    try:
        scheduler.add_task(functions.noop, "interval", hours=1, id="before")
        inserter = store._inserter
        assert inserter is not None
        postgres_server.restart()  # the kept connection is now dead
        # The first add after the restart finds it dead, falls back to the async path
        # (which reconnects: pool_pre_ping) and is stored all the same.
        scheduler.add_task(functions.noop, "interval", hours=1, id="after")
        assert hops.ids == ["after"]
        assert store.add_task_sync(make_task("again", at(1)))  # a fresh connection
        assert store._inserter is inserter
        assert {t.id for t in scheduler.get_tasks()} == {"before", "after", "again"}
    finally:
        if not postgres_server.running:
            postgres_server.start()
        scheduler.remove_all_tasks()
        scheduler.shutdown()


# -- which databases have a synchronous twin --------------------------------------------------
@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite+aiosqlite:////abs/jobs.db", "sqlite+pysqlite:////abs/jobs.db"),
        ("sqlite+aiosqlite:///rel.db?timeout=5", "sqlite+pysqlite:///rel.db?timeout=5"),
        ("sqlite+aiosqlite://", None),
        ("sqlite+aiosqlite:///:memory:", None),
        ("sqlite+aiosqlite:///file::memory:?cache=shared&uri=true", None),
        ("sqlite+pysqlcipher:///x.db", None),
        ("postgresql+asyncpg://u:p@h:5/db", "postgresql+psycopg://u:p@h:5/db"),
        ("postgresql+asyncpg://u@h/db?ssl=require", "postgresql+psycopg://u@h/db?sslmode=require"),
        (
            "postgresql+asyncpg://u@h/db?prepared_statement_cache_size=0&application_name=a",
            "postgresql+psycopg://u@h/db?application_name=a",
        ),
        ("postgresql+asyncpg://u@h/db?server_settings=x", None),
        ("postgresql+psycopg://u@h/db?sslmode=verify-full", "postgresql+psycopg://u@h/db?sslmode=verify-full"),
        ("postgresql+psycopg_async://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+pg8000://u@h/db", None),
        ("mysql+aiomysql://u@h/db", None),
    ],
)  # fmt: skip
def test_sync_urls(given: str, expected: str | None) -> None:
    found = sync_url(make_url(given), None)
    assert (None if found is None else found.render_as_string(hide_password=False)) == expected


def test_sync_url_needs_psycopg_and_portable_connect_args(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = make_url("postgresql+asyncpg://u@h/db")
    assert sync_url(url, {"server_settings": {"jit": "off"}}) is None
    # psycopg's own async driver takes the same arguments as its sync one.
    assert sync_url(make_url("postgresql+psycopg://u@h/db"), {"connect_timeout": 3}) is not None
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "psycopg" else real(name, *a)
    )
    assert sync_url(url, None) is None


def test_without_a_sync_driver_the_scheduler_takes_the_thread_hop(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncz_sqlalchemy._base as store_module

    monkeypatch.setattr(store_module, "sync_url", lambda url, connect_args: None)
    store = SQLAlchemyStore(sqlite_url)
    hops = AsyncAdds(store)
    scheduler = AsyncIOScheduler(stores={"default": store}, isolated_event_loop=True)
    scheduler.start()
    try:
        scheduler.add_task(functions.noop, "interval", hours=1, id="hop")
        assert hops.ids == ["hop"]
        assert store._inserter is None
        with pytest.raises(ConflictingIdError, match="'hop'"):
            scheduler.add_task(functions.noop, "interval", hours=1, id="hop")
    finally:
        scheduler.shutdown()
