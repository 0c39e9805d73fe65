"""``from asyncz.stores.sqlalchemy import SQLAlchemyStore`` (distribution ``asyncz-sqlalchemy``).

The core does not depend on the driver; this shim imports the plugin and, when it is not
installed, raises an error that says how to install it.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["SQLAlchemyStore"]


def __getattr__(name: str) -> Any:
    if name != "SQLAlchemyStore":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        plugin = importlib.import_module("asyncz_sqlalchemy")
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] != "asyncz_sqlalchemy":
            raise
        raise ImportError(
            "SQLAlchemyStore is provided by the asyncz-sqlalchemy distribution: "
            "pip install asyncz-sqlalchemy",
            name="asyncz_sqlalchemy",
        ) from exc
    return plugin.SQLAlchemyStore
