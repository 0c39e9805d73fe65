"""Small internal helpers: the UNSET marker and callable references."""

from __future__ import annotations

import enum
import inspect
import itertools
import os
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any, Final, NamedTuple

from asyncz.registry import import_ref

__all__ = [
    "UNSET",
    "CallableInfo",
    "UnsetType",
    "callable_info",
    "callable_to_ref",
    "new_task_id",
    "ref_to_callable",
]


class UnsetType(enum.Enum):
    """Marks an option that was not given (so the scheduler's default applies)."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Final = UnsetType.UNSET


def callable_to_ref(fn: Callable[..., Any]) -> str:
    """``"module:qualname"`` of a module-level callable; ``ValueError`` if it has none."""
    if isinstance(fn, partial):
        raise ValueError("a functools.partial has no importable reference; use args/kwargs")
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if inspect.ismethod(fn) and inspect.isclass(fn.__self__):  # a classmethod
        qualname = f"{fn.__self__.__qualname__}.{fn.__name__}"
    if not module or not qualname or "<locals>" in qualname or "<lambda>" in qualname:
        raise ValueError(
            f"{fn!r} has no importable 'module:qualname' reference (lambdas, nested functions "
            "and bound methods cannot be stored in a persistent store)"
        )
    ref = f"{module}:{qualname}"
    try:
        if ref_to_callable(ref) != fn:
            raise ValueError(f"{ref!r} does not import back to {fn!r}")
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"{ref!r} cannot be imported back: {exc}") from exc
    return ref


def ref_to_callable(ref: str) -> Callable[..., Any]:
    """Import ``"module:qualname"`` and check that it is callable."""
    obj = import_ref(ref)
    if not callable(obj):
        raise TypeError(f"{ref!r} does not refer to a callable")
    return obj  # type: ignore[no-any-return]


class CallableInfo(NamedTuple):
    """What add_task needs to know about a callable, computed once per callable."""

    reference: str | None
    signature: inspect.Signature | None
    #: True when calling it without arguments is valid (the common case skips bind()).
    takes_no_arguments: bool
    #: True for coroutine functions (and callables whose ``__call__`` is one).
    is_coroutine: bool


_INFO: weakref.WeakKeyDictionary[Any, CallableInfo] = weakref.WeakKeyDictionary()


# The last callable looked up and its info: adding many tasks of one function in a row
# (the common case) skips the weak dictionary's Python-level lookup.
_last: tuple[weakref.ref[Any], CallableInfo] | None = None


def callable_info(fn: Callable[..., Any]) -> CallableInfo:
    """Reference, signature and the no-argument check of ``fn``, cached per callable."""
    global _last
    last = _last
    if last is not None and last[0]() is fn:
        return last[1]
    try:
        info = _INFO[fn]
    except (KeyError, TypeError):
        pass
    else:
        _last = (weakref.ref(fn), info)
        return info
    try:
        reference: str | None = callable_to_ref(fn)
    except ValueError:
        reference = None
    try:
        signature: inspect.Signature | None = inspect.signature(fn)
    except (TypeError, ValueError):
        signature = None
    no_args = True
    if signature is not None:
        try:
            signature.bind()
        except TypeError:
            no_args = False
    target: Any = fn
    while isinstance(target, partial):
        target = target.func
    is_coroutine = inspect.iscoroutinefunction(target) or (
        not inspect.isroutine(target)
        and inspect.iscoroutinefunction(getattr(target, "__call__", None))  # noqa: B004
    )
    info = CallableInfo(reference, signature, no_args, is_coroutine)
    try:
        _INFO[fn] = info
    except TypeError:  # not weak-referenceable (some builtins): not cached
        pass
    return info


# Task ids: a random per-process prefix and a counter: unique, and far cheaper than uuid4().
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)


def _new_id_prefix() -> None:
    """A forked child (a pre-forking web server's worker) must not repeat its parent's ids."""
    global _ID_PREFIX, _ID_COUNTER
    _ID_PREFIX = os.urandom(8).hex()
    _ID_COUNTER = itertools.count(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_id_prefix)


def new_task_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"
