"""Helpers that Asyncz's documentation imports from ``asyncz.utils``.

Only the public ones: Asyncz's other internals (datetime and reference helpers) live in
:mod:`asyncz.timeutil` and are not part of this API.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import tzinfo
from typing import Any

__all__ = ["get_localzone", "make_async_function", "make_function"]


def make_function(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A plain Python function that calls ``fn``.

    For callables that a task cannot take as they are, typically a generator's bound
    ``send`` (a builtin method): ``add_task(make_function(gen.send), args=[True], ...)``.
    The function has no importable reference, so it fits in-process (memory) stores only.
    """

    def call(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    _name_after(call, fn)
    return call


def make_async_function(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """A coroutine function that awaits ``fn(...)``: an async generator's ``asend``, or any
    callable returning an awaitable, becomes a task that runs on the event loop."""

    async def call(*args: Any, **kwargs: Any) -> Any:
        return await fn(*args, **kwargs)

    _name_after(call, fn)
    return call


def _name_after(wrapper: Callable[..., Any], fn: Callable[..., Any]) -> None:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    functools.update_wrapper(wrapper, fn, assigned=("__doc__",), updated=())
    wrapper.__name__ = str(name).rsplit(".", 1)[-1]
    wrapper.__qualname__ = f"make_function({name})"


def get_localzone() -> tzinfo:
    """The machine's local zone (what a scheduler without ``timezone=`` uses)."""
    from asyncz.timeutil import local_timezone

    return local_timezone()
