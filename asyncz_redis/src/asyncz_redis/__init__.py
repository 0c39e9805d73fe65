"""asyncz-redis: a Redis task store for asyncz, registered as the store alias ``redis``.

``from asyncz.stores.redis import RedisStore`` (or ``from asyncz_redis import RedisStore``),
or configuration alone: ``{"asyncz.stores.default": {"type": "redis", "database": "0"}}``.
"""

from __future__ import annotations

from asyncz_redis.store import RedisStore

__all__ = ["RedisStore"]
__version__ = "0.1.0"
