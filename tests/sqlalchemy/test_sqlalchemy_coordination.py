"""The SQL store shared by several schedulers: migration of an earlier table, concurrent first
starts, NOTIFY wake-ups and fire times run exactly once across nodes (real PostgreSQL)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores.base import call_sync
from asyncz.tasks.runs import RunRecord
from asyncz.testing import functions, make_task, wait_until
from asyncz_sqlalchemy import SQLAlchemyStore
from asyncz_sqlalchemy.testing import TemporaryPostgres

UTC = timezone.utc
HERE = Path(__file__).parent


def started(store: SQLAlchemyStore) -> SQLAlchemyStore:
    call_sync(store, store.start(AsyncIOScheduler(), "default"))
    return store


def at(seconds: float) -> datetime:
    return datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }


@pytest.fixture
def fresh_database(postgres_server: TemporaryPostgres, postgres_url: str) -> Iterator[str]:
    """A new, empty database on the test cluster (its URL); dropped afterwards."""
    name = f"fresh_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(
        postgres_url.replace("postgresql://", "postgresql+psycopg://"),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield postgres_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


# -- migration of a table of the earlier version ---------------------------------------------
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_table_of_the_previous_version_is_migrated_in_place(
    backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(f"{backend}_url")
    table = f"old_{uuid.uuid4().hex[:8]}"
    encoder = SQLAlchemyStore(url)  # for payloads only: never started
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        # The table exactly as the previous version of the store created it.
        conn.exec_driver_sql(
            f"CREATE TABLE {table} (id VARCHAR(191) PRIMARY KEY, next_run_time FLOAT, "
            "payload BYTEA NOT NULL, format_version SMALLINT NOT NULL, broken TEXT, "
            "claimed_by VARCHAR(64), claimed_until FLOAT)".replace(
                "BYTEA", "BLOB" if backend == "sqlite" else "BYTEA"
            )
        )
        conn.execute(
            sa.text(f"INSERT INTO {table} VALUES (:id, :t, :p, 1, NULL, :by, :until)"),
            [
                {"id": "due", "t": at(1).timestamp(), "p": encoder.encode_task(make_task("due", at(1))), "by": "old-claimant", "until": at(9).timestamp()},
                {"id": "later", "t": at(50).timestamp(), "p": encoder.encode_task(make_task("later", at(50))), "by": None, "until": None},
                {"id": "paused", "t": None, "p": encoder.encode_task(make_task("paused", None)), "by": None, "until": None},
            ],
        )  # fmt: skip
    engine.dispose()
    store = started(SQLAlchemyStore(url, tablename=table))
    try:

        async def shape() -> tuple[set[str], list[list[str | None]]]:
            async with store.engine.connect() as conn:
                return await conn.run_sync(
                    lambda c: (
                        {col["name"] for col in sa.inspect(c).get_columns(table)},
                        [i["column_names"] for i in sa.inspect(c).get_indexes(table)],
                    )
                )

        columns, indexes = call_sync(store, shape())
        assert columns == {c.name for c in store.table.columns}
        assert ["due_at"] in indexes
        tasks = call_sync(store, store.get_all_tasks())
        assert [(t.id, t.revision) for t in tasks] == [("due", 1), ("later", 1), ("paused", 1)]
        # The run history table is new: created beside the migrated one.
        history = [RunRecord("due", "r1", at(1), "missed", submitted_at=at(2))]
        call_sync(store, store.add_runs(history))
        assert call_sync(store, store.get_runs("due")) == history
        assert call_sync(store, store.get_next_run_time()) == at(1)
        claimed = call_sync(store, store.acquire_due_tasks("node", at(60), 10.0, 10))
        assert [t.id for t in claimed] == ["due", "later"]
        # A second start (another process) finds the table as it should be.
        again = started(SQLAlchemyStore(url, tablename=table))
        call_sync(again, again.shutdown())
    finally:
        call_sync(store, store.remove_all_tasks())
        call_sync(store, store.shutdown())


# -- first starts at the same moment ---------------------------------------------------------
_STARTER = textwrap.dedent(
    """
    import sys, time
    from asyncz.schedulers.asyncio import AsyncIOScheduler
    from asyncz.stores.base import call_sync
    from asyncz_sqlalchemy import SQLAlchemyStore

    url, go = sys.argv[1], float(sys.argv[2])
    store = SQLAlchemyStore(url)
    store.engine  # imports done before the common instant
    time.sleep(max(0.0, go - time.time()))
    call_sync(store, store.start(AsyncIOScheduler(), "default"))
    call_sync(store, store.shutdown())
    print("started", flush=True)
    """
)


@pytest.mark.postgres
def test_processes_starting_at_once_on_a_fresh_database_all_start(fresh_database: str) -> None:
    go = time.time() + 3.0
    starters = [
        subprocess.Popen(
            [sys.executable, "-c", _STARTER, fresh_database, str(go)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [s.communicate(timeout=60) for s in starters]
    assert [s.returncode for s in starters] == [0, 0, 0], [err for _, err in outputs]
    assert all(out.strip() == "started" for out, _ in outputs)
    check = started(SQLAlchemyStore(fresh_database))
    try:
        assert call_sync(check, check.get_all_tasks()) == []
        assert call_sync(check, check.get_nodes()) == []
        assert call_sync(check, check.get_runs(limit=None)) == []
    finally:
        call_sync(check, check.shutdown())


# -- NOTIFY ----------------------------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.slow
def test_a_task_added_by_another_process_wakes_a_sleeping_scheduler(
    postgres_server: TemporaryPostgres, postgres_url: str
) -> None:
    table = f"notify_{uuid.uuid4().hex[:8]}"
    key = f"notify-{os.getpid()}"
    functions.reset(key)
    store = SQLAlchemyStore(postgres_url, tablename=table)
    assert store.poll_interval is None  # no polling: only the notification can wake it
    scheduler = AsyncIOScheduler(stores={"default": store}, isolated_event_loop=True)
    scheduler.start()
    writer = started(SQLAlchemyStore(postgres_url, tablename=table))
    try:
        # The scheduler sleeps until the only task it knows, an hour from now.
        scheduler.add_task(functions.noop, "interval", hours=1, id="far")
        assert store.listening

        def add_soon(task_id: str) -> None:
            soon = datetime.now(UTC) + timedelta(seconds=0.3)
            task = make_task(
                task_id, soon, fn="asyncz.testing.functions:record", trigger="date",
                run_at=soon, args=(key,), misfire_grace_time=None,
            )  # fmt: skip
            call_sync(writer, writer.add_task(task))

        add_soon("from-elsewhere")
        wait_until(lambda: functions.calls(key) == 1, timeout=20, what="the notified run")
        # The LISTEN connection comes back after a server restart.
        postgres_server.restart()
        wait_until(lambda: store.listening, timeout=30, what="LISTEN reconnected")
        add_soon("after-restart")
        wait_until(lambda: functions.calls(key) == 2, timeout=20, what="a run notified later")
    finally:
        if not postgres_server.running:
            postgres_server.start()
        call_sync(writer, writer.remove_all_tasks())
        call_sync(writer, writer.shutdown())
        scheduler.shutdown()
        functions.reset(key)


# -- two schedulers, one database: every fire time once ----------------------------------------
_NODE = textwrap.dedent(
    """
    import sys, time
    from asyncz import events as ev
    from asyncz.schedulers.asyncio import AsyncIOScheduler
    from asyncz_sqlalchemy import SQLAlchemyStore

    url, table, out = sys.argv[1], sys.argv[2], sys.argv[3]
    lines = []

    def seen(event):
        times = getattr(event, "scheduled_run_times", None) or [event.scheduled_run_time]
        for when in times:
            lines.append(f"{event.task_id} {when.timestamp():.3f} {event.code}\\n")

    scheduler = AsyncIOScheduler(stores={"default": SQLAlchemyStore(url, tablename=table)})
    scheduler.add_listener(seen, ev.TASK_SUBMITTED | ev.TASK_MAX_INSTANCES | ev.TASK_MISSED)
    scheduler.start()
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes it
    scheduler.shutdown()
    with open(out, "w") as handle:
        handle.writelines(lines)
    """
)


@pytest.mark.postgres
@pytest.mark.slow
def test_two_schedulers_on_one_database_run_each_fire_time_once(
    tmp_path: Path, postgres_url: str
) -> None:
    table = f"once_{uuid.uuid4().hex[:8]}"
    seed = started(SQLAlchemyStore(postgres_url, tablename=table))
    try:
        outs = [tmp_path / f"node{i}.txt" for i in range(2)]
        nodes = [
            subprocess.Popen(
                [sys.executable, "-c", _NODE, postgres_url, table, str(out)],
                env=_env(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for out in outs
        ]
        for node in nodes:  # both nodes run before the tasks exist (they learn by NOTIFY)
            assert node.stdout is not None
            assert node.stdout.readline().strip() == "ready", node.communicate()[1]
        start = datetime.now(UTC) + timedelta(seconds=0.5)
        tasks = [
            make_task(
                f"tick{i}", start, fn="asyncz.testing.functions:noop", trigger="interval",
                seconds=0.2, start_at=start, misfire_grace_time=None, coalesce=False,
            )
            for i in range(4)
        ]  # fmt: skip
        call_sync(seed, seed.add_tasks(tasks))
        time.sleep(3.5)
        errors = [node.communicate(input="", timeout=90)[1] for node in nodes]
        assert [node.returncode for node in nodes] == [0, 0], errors
        records = [line.split() for out in outs for line in out.read_text().splitlines()]
        fired = Counter((task_id, float(stamp)) for task_id, stamp, _ in records)
        twice = [key for key, count in fired.items() if count > 1]
        assert twice == [], f"fire times taken by both nodes: {twice[:10]}"
        for i in range(4):
            stamps = sorted(stamp for task_id, stamp in fired if task_id == f"tick{i}")
            assert len(stamps) >= 5, f"tick{i} fired only {len(stamps)} times"
            # No fire time is skipped between the first and the last one recorded.
            steps = [round(b - a, 3) for a, b in itertools.pairwise(stamps)]
            assert set(steps) == {0.2}, f"tick{i}: gaps {steps}"
        per_node = [len(out.read_text().splitlines()) for out in outs]
        print(f"{sum(fired.values())} fire times, per node {per_node}")
    finally:
        call_sync(seed, seed.remove_all_tasks())
        call_sync(seed, seed.shutdown())
