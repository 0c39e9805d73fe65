"""The web dashboard, provided by the ``asyncz-dashboard`` distribution
(``plugins/asyncz_dashboard``): ``from asyncz.dashboard import create_dashboard``.

It is a distribution of its own, as the stores that need a driver are: the core keeps no web
dependency (Jinja2, uvicorn) and no templates; the dashboard reads the deployment only
through the core's public operator API (:mod:`asyncz.operator`). Importing a name from here
without it installed raises an ``ImportError`` that says ``pip install asyncz-dashboard``.
"""

from __future__ import annotations

from typing import Any

from asyncz._lazy import plugin_export

__all__ = ["Dashboard", "create_dashboard", "serve"]

_EXPORTS = {
    name: plugin_export(__name__, name, "asyncz_dashboard", "asyncz-dashboard") for name in __all__
}


def __getattr__(name: str) -> Any:
    export = _EXPORTS.get(name)
    if export is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return export(name)
