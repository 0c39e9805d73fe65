"""The store contract of :mod:`asyncz.testing`, against a real MongoDB wire-protocol server."""

from __future__ import annotations

import pytest

from asyncz.stores.base import BaseStore
from asyncz.testing import StoreContract
from asyncz_mongo import MongoDBStore

pytestmark = pytest.mark.mongo

DATABASE = "asyncz_tests"


class TestMongoDBContract(StoreContract):
    @pytest.fixture(autouse=True)
    def _server(self, mongo_url: str) -> None:
        self.url = mongo_url

    def make_store(self) -> BaseStore:
        return MongoDBStore(
            database=DATABASE,
            collection=self.namespace,
            url=self.url,
            serverSelectionTimeoutMS=5000,
        )

    async def overwrite_payload(self, store: BaseStore, task_id: str, payload: bytes) -> None:
        assert isinstance(store, MongoDBStore)
        collection = store.client[store.database][store.collection]
        result = await collection.update_one({"_id": task_id}, {"$set": {"payload": payload}})
        assert result.matched_count == 1
