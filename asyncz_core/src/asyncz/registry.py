"""The component registry: stores, executors, triggers and serializers found by alias.

Components are published as entry points, one group per kind (``asyncz.stores``,
``asyncz.executors``, ``asyncz.triggers``, ``asyncz.serializers``); the entry-point name is the
alias and its value is ``module:Class``. The core registers its own built-ins the same way, in
``asyncz_core/pyproject.toml``.

The installed entry points are scanned once (on first use, never at ``import asyncz``; the scan
in :mod:`asyncz._entrypoints` also serves the hook plugins of :mod:`asyncz.plugins`) and each
is imported only when it is first resolved. A resolved class is checked against its kind's base
class. ``{"class": "pkg.mod:Name"}`` bypasses aliases; :func:`register` adds in-process
components (for tests, or applications that build their own).
"""

from __future__ import annotations

import importlib
import inspect
import threading
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from asyncz._entrypoints import ENTRY_POINTS, EntryPointScan
from asyncz.exceptions import (
    AliasConflictError,
    ConfigurationError,
    PluginLoadError,
    PluginTypeError,
    UnknownAliasError,
    closest,
)

__all__ = [
    "FIRST_PARTY",
    "KINDS",
    "Kind",
    "PluginEntry",
    "Registry",
    "create",
    "deregister",
    "import_ref",
    "register",
    "registry",
    "resolve",
    "resolve_ref",
]


@dataclass(frozen=True)
class Kind:
    """One kind of component: its name, its entry-point group and its base class reference."""

    name: str
    group: str
    base: str


KINDS: dict[str, Kind] = {
    "store": Kind("store", "asyncz.stores", "asyncz.stores.base:BaseStore"),
    "executor": Kind("executor", "asyncz.executors", "asyncz.executors.base:BaseExecutor"),
    "trigger": Kind("trigger", "asyncz.triggers", "asyncz.triggers.base:BaseTrigger"),
    "serializer": Kind(
        "serializer", "asyncz.serializers", "asyncz.serializers.base:BaseSerializer"
    ),
}

#: Aliases that first-party distributions provide, for the ``pip install`` hint.
FIRST_PARTY: dict[tuple[str, str], str] = {
    ("store", "redis"): "asyncz-redis",
    ("store", "mongodb"): "asyncz-mongo",
    ("store", "mongo"): "asyncz-mongo",
    ("store", "sqlalchemy"): "asyncz-sqlalchemy",
    ("store", "sqlite"): "asyncz-sqlalchemy",
    ("store", "postgresql"): "asyncz-sqlalchemy",
    ("trigger", "holidays"): "asyncz-holidays",
}


@dataclass
class PluginEntry:
    """One alias of one kind: where it comes from and, once loaded, the object."""

    kind: str
    alias: str
    value: str
    distribution: str | None = None
    version: str | None = None
    entry_point: metadata.EntryPoint | None = field(default=None, repr=False)
    obj: Any = field(default=None, repr=False)

    @property
    def loaded(self) -> bool:
        return self.obj is not None


def import_ref(ref: str) -> Any:
    """Import ``"package.module:Qualified.name"`` (or ``"package.module.name"``)."""
    if not isinstance(ref, str):
        raise TypeError(f"A reference must be a 'module:name' string, not {ref!r}")
    if ":" in ref:
        module_name, _, qualname = ref.partition(":")
    else:
        module_name, _, qualname = ref.rpartition(".")
    if not module_name or not qualname:
        raise ValueError(f"{ref!r} is not a 'module:name' reference")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _base_class(kind: str) -> type:
    base: type = import_ref(KINDS[kind].base)
    return base


def _kind(kind: str) -> Kind:
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"Unknown component kind {kind!r}; expected one of {sorted(KINDS)}")


class Registry:
    """Aliases of every kind, from installed entry points plus in-process registrations."""

    def __init__(self, entry_points: EntryPointScan | None = None) -> None:
        """``entry_points``: the scan to read (a fresh one of its own by default; the
        process-wide :data:`registry` reads :data:`asyncz._entrypoints.ENTRY_POINTS`)."""
        self._lock = threading.RLock()
        self._entry_points = entry_points if entry_points is not None else EntryPointScan()
        self._scanned: dict[str, dict[str, list[PluginEntry]]] | None = None
        self._registered: dict[str, dict[str, PluginEntry]] = {k: {} for k in KINDS}
        # (kind, alias) -> class, for the hot path (add_task with a trigger alias); cleared
        # whenever what an alias means can change.
        self._resolved: dict[tuple[str, str], type] = {}
        self._entry_points.on_invalidate(self._forget)

    # -- scanning ------------------------------------------------------------------------
    def _scan(self) -> dict[str, dict[str, list[PluginEntry]]]:
        with self._lock:
            if self._scanned is None:
                found: dict[str, dict[str, list[PluginEntry]]] = {k: {} for k in KINDS}
                for kind_name, kind in KINDS.items():
                    for item in self._entry_points.group(kind.group):
                        ep = item.entry_point
                        providers = found[kind_name].setdefault(ep.name, [])
                        # The same distribution can be visible twice on sys.path (an
                        # editable install beside a regular one): that is not a conflict.
                        if any(c.distribution == item.distribution for c in providers):
                            continue
                        providers.append(
                            PluginEntry(
                                kind=kind_name,
                                alias=ep.name,
                                value=ep.value,
                                distribution=item.distribution,
                                version=item.version,
                                entry_point=ep,
                            )
                        )
                self._scanned = found
            return self._scanned

    def _forget(self) -> None:
        with self._lock:
            self._scanned = None
            self._resolved.clear()

    def rescan(self) -> None:
        """Forget the cached scan (after installing or removing a distribution).

        The process-wide :data:`registry` shares its scan with :mod:`asyncz.plugins`, so the
        hook plugins are found again too the next time the plugin manager is built.
        """
        self._entry_points.invalidate()

    def providers(self, kind: str) -> dict[str, list[PluginEntry]]:
        """Every alias of ``kind`` with every entry providing it (conflicts included)."""
        _kind(kind)
        merged = {alias: list(entries) for alias, entries in self._scan()[kind].items()}
        for alias, entry in self._registered[kind].items():
            merged[alias] = [entry]
        return merged

    #: The earlier name of :meth:`providers`.
    claims = providers

    def aliases(self, kind: str) -> list[str]:
        """The sorted aliases of ``kind`` that can be resolved."""
        return sorted(self.providers(kind))

    def entry(self, kind: str, alias: str) -> PluginEntry:
        """The single entry behind ``alias``; raises the errors :meth:`resolve` documents."""
        info = _kind(kind)
        registered = self._registered[kind].get(alias)
        if registered is not None:
            return registered
        providers = self._scan()[kind].get(alias)
        if not providers:
            raise UnknownAliasError(
                kind, alias, info.group, self.aliases(kind), FIRST_PARTY.get((kind, alias))
            )
        if len(providers) > 1:
            raise AliasConflictError(
                kind,
                alias,
                info.group,
                [f"{c.distribution} {c.version}" for c in providers],
            )
        return providers[0]

    # -- resolving -----------------------------------------------------------------------
    def resolve(self, kind: str, alias: str) -> type:
        """Return the class registered as ``alias`` for ``kind``, importing it on first use.

        Raises :class:`UnknownAliasError` (lists what is installed, and the ``pip install``
        line for first-party aliases), :class:`AliasConflictError` when two distributions
        claim the alias, :class:`PluginLoadError` chained to the import error, and
        :class:`PluginTypeError` when the object is not a subclass of the kind's base class.
        """
        cached = self._resolved.get((kind, alias))
        if cached is not None:
            return cached
        entry = self.entry(kind, alias)
        with self._lock:
            if entry.obj is None:
                try:
                    obj = (
                        entry.entry_point.load()
                        if entry.entry_point is not None
                        else import_ref(entry.value)
                    )
                except Exception as exc:
                    raise PluginLoadError(
                        kind,
                        alias,
                        KINDS[kind].group,
                        entry.value,
                        entry.distribution,
                        entry.version,
                        exc,
                    ) from exc
                self._check(kind, alias, obj)
                entry.obj = obj
            resolved: type = entry.obj
            self._resolved[(kind, alias)] = resolved
            return resolved

    def resolve_ref(self, ref: str, kind: str | None = None) -> Any:
        """Import ``"module:Name"``; with ``kind``, also check it against that kind's base."""
        try:
            obj = import_ref(ref)
        except Exception as exc:
            raise PluginLoadError(
                kind or "object",
                ref,
                KINDS[kind].group if kind else "-",
                ref,
                None,
                None,
                exc,
            ) from exc
        if kind is not None:
            self._check(kind, ref, obj)
        return obj

    def _check(self, kind: str, alias: str, obj: Any) -> None:
        base = _base_class(kind)
        if not (isinstance(obj, type) and issubclass(obj, base)):
            raise PluginTypeError(kind, alias, obj, base)

    # -- in-process registrations ---------------------------------------------------------
    def register(self, kind: str, alias: str, obj: Any, *, replace: bool = False) -> None:
        """Register a class (or a ``"module:Name"`` reference, loaded lazily) as ``alias``.

        An in-process registration shadows an installed entry point of the same alias.
        """
        _kind(kind)
        with self._lock:
            if alias in self._registered[kind] and not replace:
                raise AliasConflictError(
                    kind, alias, KINDS[kind].group, ["an earlier register()", "this register()"]
                )
            if isinstance(obj, str):
                entry = PluginEntry(kind=kind, alias=alias, value=obj)
            else:
                self._check(kind, alias, obj)
                value = f"{obj.__module__}:{obj.__qualname__}"
                entry = PluginEntry(kind=kind, alias=alias, value=value, obj=obj)
            self._registered[kind][alias] = entry
            self._resolved.pop((kind, alias), None)

    def deregister(self, kind: str, alias: str) -> None:
        """Remove an in-process registration; raises ``LookupError`` when there is none."""
        _kind(kind)
        with self._lock:
            if self._registered[kind].pop(alias, None) is None:
                raise LookupError(f"No in-process {kind} registered as {alias!r}")
            self._resolved.pop((kind, alias), None)

    def iter_entries(self) -> Iterator[PluginEntry]:
        """Every resolvable entry of every kind (first claimant when an alias conflicts)."""
        for kind in KINDS:
            for _alias, entries in sorted(self.providers(kind).items()):
                yield from entries

    # -- instantiation ---------------------------------------------------------------------
    def create(self, kind: str, spec: Mapping[str, Any], *, key: str) -> Any:
        """Build a component from ``{"type": alias | "class": "module:Name", **options}``.

        Option values are coerced to the annotated types of the class's ``__init__``
        (``"20"`` becomes ``20``, ``"false"`` becomes ``False``). Every failure is a
        :class:`ConfigurationError` naming the dotted ``key`` (``asyncz.stores.default``).
        """
        options = dict(spec)
        alias = options.pop("type", None)
        ref = options.pop("class", None)
        if alias is None and ref is None:
            raise ConfigurationError(
                [(key, "needs 'type' (an installed alias) or 'class' ('module:Name')")]
            )
        if alias is not None and ref is not None:
            raise ConfigurationError([(key, "give either 'type' or 'class', not both")])
        try:
            if ref is not None:
                cls = self.resolve_ref(str(ref), kind)
            else:
                cls = self.resolve(kind, str(alias))
        except (LookupError, ImportError, TypeError) as exc:
            where = f"{key}.class" if ref is not None else f"{key}.type"
            raise ConfigurationError([(where, str(exc))]) from exc
        kwargs = coerce_options(cls, options, key)
        try:
            return cls(**kwargs)
        except ConfigurationError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigurationError([(key, str(exc))]) from exc


def _init_parameters(cls: type) -> tuple[dict[str, inspect.Parameter], bool, dict[str, Any]]:
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return {}, True, {}
    params = {
        name: p
        for name, p in signature.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    var_kw = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    try:
        hints = typing.get_type_hints(cls.__init__)  # type: ignore[misc]
    except Exception:
        hints = {}
    return params, var_kw, hints


def coerce_options(cls: type, options: Mapping[str, Any], key: str) -> dict[str, Any]:
    """Check option names against ``cls.__init__`` and coerce values to their annotations."""
    from pydantic import ConfigDict, TypeAdapter, ValidationError

    params, var_kw, hints = _init_parameters(cls)
    errors: list[tuple[str, str]] = []
    result: dict[str, Any] = {}
    for name, value in options.items():
        dotted = f"{key}.{name}"
        if name not in params:
            if var_kw:
                result[name] = value
                continue
            guess = closest(name, params)
            hint = f"; did you mean {guess!r}?" if guess else ""
            known = ", ".join(sorted(params)) or "none"
            errors.append((dotted, f"unknown option for {cls.__name__}{hint} (known: {known})"))
            continue
        annotation = hints.get(name, inspect.Parameter.empty)
        if annotation is inspect.Parameter.empty or annotation is Any:
            result[name] = value
            continue
        try:
            adapter: TypeAdapter[Any] = TypeAdapter(
                annotation, config=ConfigDict(arbitrary_types_allowed=True)
            )
        except Exception:
            result[name] = value
            continue
        try:
            result[name] = adapter.validate_python(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            errors.append((dotted, f"{first['msg']} (got {value!r})"))
    if errors:
        raise ConfigurationError(errors)
    return result


registry = Registry(ENTRY_POINTS)
resolve = registry.resolve
resolve_ref = registry.resolve_ref
register = registry.register
deregister = registry.deregister
create = registry.create
