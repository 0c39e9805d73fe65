"""The whole store contract, passed by a store written in Asyncz's synchronous style."""

from __future__ import annotations

from typing import Any

from test_compat_custom_store import DictStore

from asyncz.stores.base import BaseStore
from asyncz.testing import StoreContract

# make_store() is called again within a test and must see the same data: one dict per test.
_BACKENDS: dict[str, dict[str, Any]] = {}


class SharedDictStore(DictStore):
    def __init__(self, namespace: str) -> None:
        super().__init__()
        self.tasks = _BACKENDS.setdefault(namespace, {})

    def get_due_tasks(self, now: Any) -> list[Any]:
        # A subclass's plain method calling its parent's plain method through super().
        return list(super().get_due_tasks(now))


class TestSynchronousStoreContract(StoreContract):
    def make_store(self) -> BaseStore:
        return SharedDictStore(self.namespace)
