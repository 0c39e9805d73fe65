"""Servers and figures for the chaos tests.

The servers come from the other test directories' helpers (``running_redis``,
``running_postgres`` and ``given_or_started`` of the tests/redis, tests/sqlalchemy and
tests/mongo conftest modules, loaded here by path: they are not packages), so the chaos tests
start them the same way, on their own ports, and fail under ``CI=true`` when one cannot be
had. Each test appends its figures (runs, duplicates, lost, takeover) to ``figures.jsonl`` in the
session's chaos directory (copied to ``<pytest basetemp>/chaos-figures.jsonl``); the session
prints them as a table at the end.

The node processes' files live in a directory of the chaos session's own
(``/tmp/asyncz-chaos-*``), not in pytest's basetemp: pytest removes older numbered basetemps
when other sessions start, which can happen in the middle of a chaos run on a machine where
several test sessions run at once. It is removed at the end unless a test failed (its path is
then printed with the figures).
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parents[1]


def _load(directory: str) -> ModuleType:
    """tests/<directory>/conftest.py as a module of its own (not a second plugin)."""
    name = f"_chaos_{directory}_conftest"
    spec = importlib.util.spec_from_file_location(name, TESTS / directory / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_redis = _load("redis")
_mongo = _load("mongo")
_sql = _load("sqlalchemy")


#: The session's chaos directory, once made (read by the terminal summary).
_SESSION: dict[str, Any] = {}


@pytest.fixture(scope="session")
def chaos_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """The chaos session's own directory (see the module docstring)."""
    path = Path(tempfile.mkdtemp(prefix="asyncz-chaos-"))
    _SESSION["dir"] = path
    try:
        yield path
    finally:
        if request.session.testsfailed == 0:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def chaos_tmp(chaos_dir: Path, request: pytest.FixtureRequest) -> Path:
    """A directory of the test's own inside the chaos directory."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:60]
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=chaos_dir))


@pytest.fixture(scope="session")
def chaos_redis(chaos_dir: Path) -> Iterator[Any]:
    """A redis-server for the chaos tests (each test empties it first)."""
    with _redis.running_redis(chaos_dir / "redis") as server:
        yield server


@pytest.fixture(scope="session")
def chaos_postgres() -> Iterator[Any]:
    """A throw-away PostgreSQL cluster (tests/sqlalchemy's way), one table per test."""
    with _sql.running_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def chaos_mongo_url() -> Iterator[str]:
    """A MongoDB wire-protocol server (tests/mongo's way), one database per test.

    mongoeco runs on its in-memory engine: no chaos scenario restarts the Mongo server, and
    on its SQLite engine every document write costs 7-10 ms of the server's (one Python
    process) time, so that claiming and writing back 100 tasks a second (200 writes)
    saturates it on a 2-core machine shared with three node processes."""
    with _mongo.given_or_started(persistent=False) as server:
        yield os.environ["ASYNCZ_TEST_MONGO_URL"] if server is None else server.url


@pytest.fixture
def redis_factory(chaos_tmp: Path) -> Iterator[Any]:
    """``make(*extra_args)``: start a redis-server of the test's own (stopped at the end)."""
    numbers = itertools.count()
    with contextlib.ExitStack() as servers:

        def make(*extra_args: str) -> Any:
            directory = chaos_tmp / f"redis-{next(numbers)}"
            return servers.enter_context(_redis.running_redis(directory, *extra_args))

        yield make


@pytest.fixture
def durable_redis(redis_factory: Any) -> Any:
    """A redis-server of the test's own with the append-only file on (fsync at every write):
    a test may SIGKILL it and start it again from its data."""
    return redis_factory("--appendonly", "yes", "--appendfsync", "always")


@pytest.fixture
def durable_postgres() -> Iterator[Any]:
    """A PostgreSQL cluster of the test's own whose commits are acknowledged once their WAL is
    written (``synchronous_commit=on``; tests/sqlalchemy's cluster turns it off for speed), so
    that an immediate (crash) stop of the server loses no acknowledged commit. ``fsync`` stays
    off: the test crashes the server process, not the machine (the page cache survives)."""
    from asyncz_sqlalchemy.testing import TemporaryPostgres

    class DurablePostgres(TemporaryPostgres):
        settings = "-c synchronous_commit=on -c fsync=off"

    with _sql.running_postgres(DurablePostgres) as server:
        yield server


@pytest.fixture(scope="session")
def figures_path(chaos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The JSON-lines file every chaos test appends its figures to (copied into pytest's
    basetemp as chaos-figures.jsonl at the end)."""
    path = chaos_dir / "figures.jsonl"
    path.touch()
    try:
        yield path
    finally:
        _SESSION["figures"] = path.read_text()  # for the summary (the directory may go)
        try:
            shutil.copy(path, tmp_path_factory.getbasetemp() / "chaos-figures.jsonl")
        except OSError:
            pass


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The figures table: store x scenario -> runs, duplicates, lost, in flight (runs the
    killed node had submitted, lost with it by design), takeover seconds."""
    text: str = _SESSION.get("figures", "")
    if not text.strip():
        return
    terminalreporter.section("chaos figures")
    terminalreporter.write_line(
        f"{'store':<11} {'scenario':<17} {'runs':>6} {'dup':>5} {'lost':>5} {'in flight':>9} "
        f"{'takeover s':>11}"
    )
    for line in text.splitlines():
        row = json.loads(line)
        takeover = row.get("takeover_s")
        shown = "-" if takeover is None else f"{takeover:.2f}"
        terminalreporter.write_line(
            f"{row['store']:<11} {row['scenario']:<17} {row['runs']:>6} "
            f"{row['duplicates']:>5} {row['lost']:>5} {row.get('in_flight', 0):>9} {shown:>11}"
        )
    kept = _SESSION.get("dir")
    if kept is not None and kept.exists():
        terminalreporter.write_line(f"(a test failed: the nodes' files are kept in {kept})")
