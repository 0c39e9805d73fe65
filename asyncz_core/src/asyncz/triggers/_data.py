"""Building triggers from aliases, and turning them into plain data and back.

Data path: ``add_task("alias", ...)`` and TOML task tables build triggers here; a
trigger becomes data when it is shown or declared, and back.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from typing import Any

from asyncz.registry import registry
from asyncz.triggers.base import BaseTrigger, UnknownOptionError

__all__ = ["create_trigger", "trigger_from_data", "trigger_to_data"]


def _registry() -> Any:
    return registry


@functools.lru_cache(maxsize=256)
def _option_names(cls: type) -> tuple[str, ...] | None:
    """The keyword options ``cls`` accepts; ``None`` when it checks its own (``**kwargs``)."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return None
    parameters = signature.parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return None  # the class checks its own keyword arguments (the built-ins do)
    return tuple(
        name
        for name, p in parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    )


def _check_option_names(cls: type, options: Mapping[str, Any]) -> None:
    """Name an unknown option (and the closest valid one) before the constructor does."""
    if not options:
        return
    names = _option_names(cls)
    if names is None:
        return
    valid = list(names)
    for key in options:
        if key not in valid:
            raise UnknownOptionError(cls.__name__, key, valid)


def create_trigger(trigger: BaseTrigger | str | None = None, /, **options: Any) -> BaseTrigger:
    """Return a trigger from an instance, an alias plus options, or ``None``.

    * an instance is returned as is (``options`` must then be empty: ``TypeError``);
    * an alias (``"cron"``, ``"holidays"``, ...) is resolved through the ``asyncz.triggers``
      entry points and instantiated with ``options``; an unknown option raises
      :class:`~asyncz.triggers.base.UnknownOptionError` (a ``TypeError``) naming the key and
      the closest valid one; an unknown alias raises
      :class:`~asyncz.exceptions.UnknownAliasError`;
    * ``None`` means a :class:`~asyncz.triggers.DateTrigger` built from ``options``
      (no options: fire once, now).
    """
    # An alias first: isinstance against the abstract BaseTrigger is the slower check.
    if trigger.__class__ is not str and isinstance(trigger, BaseTrigger):
        if options:
            raise TypeError(
                f"options {sorted(options)} were given with a trigger instance ({trigger}); "
                "pass either an instance or an alias with options"
            )
        return trigger
    if trigger is None:
        trigger = "date"
    if not isinstance(trigger, str):
        raise TypeError(
            f"trigger must be a BaseTrigger instance, an alias string or None, not {trigger!r}"
        )
    cls: type[BaseTrigger] = _registry().resolve("trigger", trigger)
    _check_option_names(cls, options)
    return cls(**options)


def _type_of(trigger: BaseTrigger) -> str:
    cls = type(trigger)
    alias = cls.alias
    if alias:
        try:
            if _registry().resolve("trigger", alias) is cls:
                return alias
        except Exception:  # not installed under that alias: fall back to the class path
            pass
    return f"{cls.__module__}:{cls.__qualname__}"


def trigger_to_data(trigger: BaseTrigger) -> dict[str, Any]:
    """``{"type": alias or "module:Qualname", "state": trigger.__getstate__()}``."""
    if not isinstance(trigger, BaseTrigger):
        raise TypeError(f"expected a trigger, not {trigger!r}")
    return {"type": _type_of(trigger), "state": trigger.__getstate__()}


def trigger_from_data(data: Mapping[str, Any]) -> BaseTrigger:
    """Rebuild a trigger from the output of :func:`trigger_to_data`.

    Raises ``ValueError`` for malformed data and the registry's errors for an unknown type.
    """
    if not isinstance(data, Mapping) or "type" not in data or "state" not in data:
        raise ValueError(f"trigger data must be {{'type': ..., 'state': {{...}}}}, not {data!r}")
    kind, state = data["type"], data["state"]
    if not isinstance(kind, str) or not isinstance(state, Mapping):
        raise ValueError(f"trigger data has a bad 'type' or 'state': {data!r}")
    registry = _registry()
    if ":" in kind:
        cls = registry.resolve_ref(kind, "trigger")
    else:
        cls = registry.resolve("trigger", kind)
    trigger: BaseTrigger = cls.__new__(cls)
    trigger.__setstate__(dict(state))
    return trigger
