"""A MongoDB server that cannot be reached at start: one line naming the store, its kind,
its address and the setting to fix, raised as StoreUnavailableError with the cause chained."""

from __future__ import annotations

import socket
import threading

import pytest

from asyncz.exceptions import StoreUnavailableError
from asyncz.schedulers.asyncio import AsyncIOScheduler

pytestmark = pytest.mark.mongo


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_an_unreachable_mongo_at_start_is_one_line(
    mongo_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # the session's server runs elsewhere; nothing listens here
    scheduler = AsyncIOScheduler(
        global_config={
            "asyncz.stores.default": {
                "type": "mongodb",
                "url": f"mongodb://127.0.0.1:{port}",
                "serverSelectionTimeoutMS": 500,
            }
        }
    )
    before = sorted(t.name for t in threading.enumerate())
    with pytest.raises(StoreUnavailableError) as info:
        scheduler.start()
    message = str(info.value)
    assert "\n" not in message
    assert f"'default' (mongodb at mongodb://127.0.0.1:{port}/asyncz.tasks)" in message
    assert "asyncz.stores.default.url" in message
    assert info.value.__cause__ is not None
    assert not [r for r in caplog.records if r.exc_info], "no traceback is logged"
    # The client's monitor threads (made with it at construction) are closed too.
    assert {t.name for t in threading.enumerate()} <= set(before)
