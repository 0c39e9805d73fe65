"""``asyncz.stores.<backend>`` shims: the plugin's class when installed, the pip line when not."""

from __future__ import annotations

import importlib
import sys

import pytest

SHIMS = [
    ("redis", "RedisStore", "asyncz_redis", "asyncz-redis"),
    ("mongo", "MongoDBStore", "asyncz_mongo", "asyncz-mongo"),
    ("sqlalchemy", "SQLAlchemyStore", "asyncz_sqlalchemy", "asyncz-sqlalchemy"),
]


@pytest.mark.parametrize(("module", "name", "package", "distribution"), SHIMS)
def test_shim_gives_the_plugin_class(
    module: str, name: str, package: str, distribution: str
) -> None:
    shim = importlib.import_module(f"asyncz.stores.{module}")
    plugin = importlib.import_module(package)
    assert getattr(shim, name) is getattr(plugin, name)
    stores = importlib.import_module("asyncz.stores")
    assert getattr(stores, name) is getattr(plugin, name)


@pytest.mark.parametrize(("module", "name", "package", "distribution"), SHIMS)
def test_shim_says_what_to_install(
    module: str, name: str, package: str, distribution: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # as if not installed
    shim = importlib.import_module(f"asyncz.stores.{module}")
    with pytest.raises(ImportError, match=f"pip install {distribution}"):
        getattr(shim, name)
    with pytest.raises(AttributeError):
        shim.Nothing  # noqa: B018
