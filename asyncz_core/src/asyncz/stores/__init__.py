"""Stores: where tasks live. ``MemoryStore`` is built in; others are plugins.

Data path: add_task -> **store** (tasks wait here) -> wake-up -> pass (due tasks out,
next run times back) -> executor -> event.

``RedisStore`` and ``MongoDBStore`` are imported lazily from their distributions
(``asyncz-redis``, ``asyncz-mongo``); without them the import says what to install.
"""

from __future__ import annotations

from asyncz._lazy import lazy_exports
from asyncz.stores.base import BaseStore
from asyncz.stores.memory import MemoryStore

__all__ = ["BaseStore", "MemoryStore", "MongoDBStore", "RedisStore", "SQLAlchemyStore"]

_LAZY = {
    "RedisStore": "asyncz.stores.redis",
    "MongoDBStore": "asyncz.stores.mongo",
    "SQLAlchemyStore": "asyncz.stores.sqlalchemy",
}


__getattr__ = lazy_exports(__name__, _LAZY)
