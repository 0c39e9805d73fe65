"""What :class:`asyncz_redis.RedisStore` checks of its server when it connects: persistence
(a server without RDB snapshots or an append-only file loses every task on a restart)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import redis

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from asyncz_redis.store import RedisStore

__all__ = ["warn_without_persistence"]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _config_value(reply: Any, name: str) -> str:
    """A value of a CONFIG GET reply (keys are bytes without decode_responses)."""
    items = {_text(k): v for k, v in dict(reply).items()}
    value = items.get(name)
    return _text(value) if value is not None else ""


async def warn_without_persistence(client: Redis, store: RedisStore) -> None:
    """Warn when the server would lose every task on a restart (no RDB snapshots and no
    append-only file); a server that refuses CONFIG is given the benefit of the doubt."""
    try:
        save = await client.config_get("save")
        appendonly = await client.config_get("appendonly")
    except redis.ResponseError as exc:
        store.logger.debug("Cannot check the persistence of %s: %s", store.address(), exc)
        return
    snapshots = _config_value(save, "save").strip()
    aof = _config_value(appendonly, "appendonly")
    if not snapshots and aof.strip().lower() != "yes":
        store.logger.warning(
            'Store %r: the Redis server at %s runs without persistence (save "", '
            "appendonly no): a restart of the server loses every task. See 'Durability' in "
            "docs/stores.md",
            store.alias,
            store.address(),
        )
