"""A real MongoDB wire-protocol server for the MongoDB store tests.

``ASYNCZ_TEST_MONGO_URL`` (e.g. ``mongodb://localhost:27017``) points the tests at a server
of yours. Otherwise the session runs ``scripts/setup-mongoeco`` (a Python >= 3.13 virtual
environment with ``mongoeco[wire]``, made once) and starts mongoeco on a free port with a
temporary data directory (see :class:`asyncz_mongo.testing.TemporaryMongoeco`). When no
server can be had the tests skip, saying how to get one, or fail under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from asyncz_mongo.testing import MongoUnavailable, TemporaryMongoeco

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "scripts" / "setup-mongoeco"
HOW = (
    "run scripts/setup-mongoeco (needs a Python >= 3.13, e.g. `pyenv install 3.13`), "
    "or set ASYNCZ_TEST_MONGO_URL=mongodb://host:port to use a server of yours"
)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"A MongoDB wire-protocol server is required under CI=true: {reason}")
    pytest.skip(f"no MongoDB wire-protocol server: {reason}; {HOW}")


def _mongoeco_python() -> str:
    """The interpreter of the mongoeco venv, made by scripts/setup-mongoeco if needed."""
    given = os.environ.get("ASYNCZ_MONGOECO_PYTHON")
    if given:
        return given
    try:
        done = subprocess.run(
            [str(SETUP)], capture_output=True, text=True, timeout=600, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"{SETUP.name} could not run: {exc}")
        raise  # unreachable: _unavailable raises
    if done.returncode != 0:
        _unavailable(f"{SETUP.name} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def start_mongoeco(*, persistent: bool = True) -> TemporaryMongoeco:
    """A started mongoeco server; ``persistent=False``: its in-memory engine (documents lost
    on restart, each write about 3x cheaper than on its SQLite engine)."""
    server = TemporaryMongoeco(_mongoeco_python(), persistent=persistent)
    try:
        server.start()
    except MongoUnavailable as exc:
        server.close()
        _unavailable(str(exc))
    return server


@contextlib.contextmanager
def given_or_started(*, persistent: bool = True) -> Iterator[TemporaryMongoeco | None]:
    """``None`` when ASYNCZ_TEST_MONGO_URL names the server to use, else a started mongoeco
    (see :func:`start_mongoeco`), closed at the end (tests/chaos uses it too)."""
    if os.environ.get("ASYNCZ_TEST_MONGO_URL"):
        yield None
        return
    server = start_mongoeco(persistent=persistent)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def mongo_server() -> Iterator[TemporaryMongoeco | None]:
    """The session's mongoeco server, or ``None`` when ASYNCZ_TEST_MONGO_URL is used."""
    with given_or_started() as server:
        yield server


@pytest.fixture
def mongo_url(mongo_server: TemporaryMongoeco | None) -> str:
    if mongo_server is None:
        return os.environ["ASYNCZ_TEST_MONGO_URL"]
    if not mongo_server.running:  # a test that stopped it failed half-way
        mongo_server.start()
    return mongo_server.url


@pytest.fixture
def restartable_server() -> Iterator[TemporaryMongoeco]:
    """A mongoeco server of the test's own, for tests that kill and restart it."""
    server = start_mongoeco()
    try:
        yield server
    finally:
        server.close()
