"""``from asyncz.stores.mongo import MongoDBStore``, provided by the ``asyncz-mongo`` distribution.

The core does not depend on the driver; this shim imports the plugin and, when it is not
installed, raises an error that says how to install it.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["MongoDBStore"]


def __getattr__(name: str) -> Any:
    if name != "MongoDBStore":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        plugin = importlib.import_module("asyncz_mongo")
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] != "asyncz_mongo":
            raise
        raise ImportError(
            "MongoDBStore is provided by the asyncz-mongo distribution: pip install asyncz-mongo",
            name="asyncz_mongo",
        ) from exc
    return plugin.MongoDBStore
