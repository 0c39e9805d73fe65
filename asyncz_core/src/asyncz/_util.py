"""Small internal helpers: the UNSET marker and callable references."""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable
from functools import partial
from typing import Any, Final

from asyncz.registry import import_ref

__all__ = ["UNSET", "UnsetType", "callable_to_ref", "ref_to_callable"]


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
