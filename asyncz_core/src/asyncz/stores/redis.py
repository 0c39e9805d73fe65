"""``from asyncz.stores.redis import RedisStore``, provided by the ``asyncz-redis`` distribution.

The core does not depend on the driver; this shim imports the plugin and, when it is not
installed, raises an error that says how to install it.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["RedisStore"]


def __getattr__(name: str) -> Any:
    if name != "RedisStore":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        plugin = importlib.import_module("asyncz_redis")
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] != "asyncz_redis":
            raise
        raise ImportError(
            "RedisStore is provided by the asyncz-redis distribution: pip install asyncz-redis",
            name="asyncz_redis",
        ) from exc
    return plugin.RedisStore
