"""A PostgreSQL server that cannot be reached at start: one line naming the store, its kind,
its address and the setting to fix, raised as StoreUnavailableError with the cause chained."""

from __future__ import annotations

import socket
import threading

import pytest

from asyncz.exceptions import StoreUnavailableError
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.testing import functions

pytestmark = pytest.mark.postgres


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_an_unreachable_postgres_at_start_is_one_line(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The session's real server runs; this URL points at a port where nothing listens.
    port = free_port()
    url = f"postgresql://asyncz:secret@127.0.0.1:{port}/asyncz"
    scheduler = AsyncIOScheduler(
        global_config={"asyncz.stores.default": {"type": "sqlalchemy", "database": url}}
    )
    scheduler.add_task(functions.noop, "interval", hours=1, id="pending")
    before = sorted(t.name for t in threading.enumerate())
    with pytest.raises(StoreUnavailableError) as info:
        scheduler.start()
    message = str(info.value)
    assert "\n" not in message
    assert "'default' (sqlalchemy at postgresql+" in message
    assert f"127.0.0.1:{port}/asyncz" in message
    assert "secret" not in message
    assert "asyncz.stores.default.database" in message
    assert info.value.__cause__ is not None
    assert not [r for r in caplog.records if r.exc_info], "no traceback is logged"
    assert sorted(t.name for t in threading.enumerate()) == before
    assert [t.id for t in scheduler.get_tasks()] == ["pending"]  # still pending, not lost
