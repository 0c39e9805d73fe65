"""The store contract on the in-memory store."""

from __future__ import annotations

from asyncz.stores.base import BaseStore
from asyncz.stores.memory import MemoryStore
from asyncz.testing import StoreContract


class TestMemoryStoreContract(StoreContract):
    def make_store(self) -> BaseStore:
        return MemoryStore()
