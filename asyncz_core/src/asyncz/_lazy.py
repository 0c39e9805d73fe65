"""Module attributes imported on first use: cheap imports, optional plugin distributions."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports", "plugin_export"]


def lazy_exports(module: str, sources: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` importing each name from ``sources[name]`` on first use.

    The value is cached in the module, so later look-ups are plain attribute reads.
    """
    namespace = sys.modules[module].__dict__

    def __getattr__(name: str) -> Any:
        source = sources.get(name)
        if source is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source), name)
        namespace[name] = value
        return value

    return __getattr__


def plugin_export(module: str, name: str, package: str, distribution: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` giving ``name`` from the plugin ``package``; when that
    distribution is not installed the import error says ``pip install <distribution>``."""

    def __getattr__(attribute: str) -> Any:
        if attribute != name:
            raise AttributeError(f"module {module!r} has no attribute {attribute!r}")
        try:
            plugin = importlib.import_module(package)
        except ImportError as exc:
            if exc.name is not None and exc.name.split(".")[0] != package:
                raise  # the plugin is installed but one of its own imports failed
            raise ImportError(
                f"{name} is provided by the {distribution} distribution: "
                f"pip install {distribution}",
                name=package,
            ) from exc
        return getattr(plugin, name)

    return __getattr__
