"""Stores: where tasks live. ``MemoryStore`` is built in; others are plugins.

``RedisStore`` and ``MongoDBStore`` are imported lazily from their distributions
(``asyncz-redis``, ``asyncz-mongo``); without them the import says what to install.
"""

from __future__ import annotations

from typing import Any

from asyncz.stores.base import BaseStore
from asyncz.stores.memory import MemoryStore

__all__ = ["BaseStore", "MemoryStore", "MongoDBStore", "RedisStore", "SQLAlchemyStore"]

_LAZY = {
    "RedisStore": "asyncz.stores.redis",
    "MongoDBStore": "asyncz.stores.mongo",
    "SQLAlchemyStore": "asyncz.stores.sqlalchemy",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'asyncz.stores' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
