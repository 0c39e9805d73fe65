"""``from asyncz.stores.redis import RedisStore``, provided by the ``asyncz-redis`` distribution.

Data path: the store step (add_task -> store -> pass), for Redis, in the plugin.

The core does not depend on the driver; this shim imports the plugin and, when it is not
installed, raises an error that says how to install it.
"""

from __future__ import annotations

from asyncz._lazy import plugin_export

__all__ = ["RedisStore"]


__getattr__ = plugin_export(__name__, "RedisStore", "asyncz_redis", "asyncz-redis")
