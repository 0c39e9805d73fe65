"""The store contract on RedisStore, against the session's private redis-server."""

from __future__ import annotations

import pytest

from asyncz.stores.base import BaseStore
from asyncz.testing import StoreContract
from asyncz_redis import RedisStore
from conftest import RedisServer

pytestmark = pytest.mark.redis


class TestRedisStoreContract(StoreContract):
    @pytest.fixture(autouse=True)
    def _server(self, redis_server: RedisServer) -> None:
        self.server = redis_server

    def make_store(self) -> BaseStore:
        return RedisStore(
            host="127.0.0.1",
            port=self.server.port,
            tasks_key=f"{self.namespace}.tasks",
            run_times_key=f"{self.namespace}.run_times",
        )

    async def overwrite_payload(self, store: BaseStore, task_id: str, payload: bytes) -> None:
        assert isinstance(store, RedisStore)
        await store.client.hset(store.tasks_key, task_id, payload)  # type: ignore[misc]
