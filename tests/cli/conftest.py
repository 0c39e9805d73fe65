"""A deployment under test: a configuration file, a store (SQLite, Redis or PostgreSQL), and a
node (``asyncz run`` in another process) that runs the task ``tick`` every quarter second,
each run appending its time to ``ticks.txt``. The CLI works against the same file and store.

The Redis and PostgreSQL servers are the ones of ``tests/redis/conftest.py`` and
``tests/sqlalchemy/conftest.py`` (their fixtures are imported here, not copied).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # cli_helpers

from cli_helpers import BACKENDS, Deployment, store_options

TESTS = Path(__file__).resolve().parent.parent


def _conftest(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_redis = _conftest(TESTS / "redis" / "conftest.py", "_asyncz_cli_redis_conftest")
_sql = _conftest(TESTS / "sqlalchemy" / "conftest.py", "_asyncz_cli_sql_conftest")
redis_server = _redis.redis_server
postgres_server = _sql.postgres_server
postgres_url = _sql.postgres_url


@pytest.fixture(params=BACKENDS)
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    """A deployment whose node is running."""
    backend = request.param
    found = Deployment(tmp_path, store_options(request, backend, tmp_path), backend)
    found.start_node()
    try:
        yield found
    finally:
        found.stop_node()


@pytest.fixture
def sqlite_deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    """A SQLite deployment without a node (start one with ``start_node()``)."""
    found = Deployment(tmp_path, store_options(request, "sqlite", tmp_path), "sqlite")
    try:
        yield found
    finally:
        found.stop_node()
