"""The component registry, against fake distributions put on sys.path (as pytest's own tests do)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest

from asyncz import registry as registry_module
from asyncz.exceptions import (
    AliasConflictError,
    ConfigurationError,
    PluginLoadError,
    PluginTypeError,
    UnknownAliasError,
)
from asyncz.registry import Kind, Registry

TRIGGER_MODULE = """
from asyncz.triggers.base import BaseTrigger

class Every(BaseTrigger):
    __slots__ = ("fast", "label", "seconds")

    def __init__(self, seconds: int, label: str = "x", fast: bool = True) -> None:
        self.seconds = seconds
        self.label = label
        self.fast = fast

    def get_next_trigger_time(self, timezone, previous_time, now=None):
        return None

    def __getstate__(self):
        return {"seconds": self.seconds}

    def __setstate__(self, state):
        self.seconds = state["seconds"]

class NotATrigger:
    pass
"""

MakeDist = Callable[..., Path]


@pytest.fixture
def make_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MakeDist:
    """Create a fake installed distribution: ``*.dist-info`` plus modules, on sys.path."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    for module in list(sys.modules):
        if module.startswith("fake_"):
            monkeypatch.delitem(sys.modules, module)

    def make(
        name: str,
        version: str = "1.0",
        entry_points: dict[str, dict[str, str]] | None = None,
        modules: dict[str, str] | None = None,
    ) -> Path:
        info = root / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
        )
        lines = []
        for group, items in (entry_points or {}).items():
            lines.append(f"[{group}]")
            lines.extend(f"{alias} = {value}" for alias, value in items.items())
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        for module, source in (modules or {}).items():
            monkeypatch.delitem(sys.modules, module, raising=False)
            (root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        return info

    return make


@pytest.fixture
def reg() -> Registry:
    return Registry()


def test_alias_resolves_lazily(make_dist: MakeDist, reg: Registry) -> None:
    make_dist(
        "fake-every",
        entry_points={"asyncz.triggers": {"every": "fake_every_mod:Every"}},
        modules={"fake_every_mod": TRIGGER_MODULE},
    )
    assert "every" in reg.aliases("trigger")
    assert "fake_every_mod" not in sys.modules
    entry = reg.entry("trigger", "every")
    assert (entry.distribution, entry.version, entry.loaded) == ("fake-every", "1.0", False)
    cls = reg.resolve("trigger", "every")
    assert cls.__name__ == "Every"
    assert reg.resolve("trigger", "every") is cls
    assert entry.loaded


def test_scan_is_cached_until_rescan(make_dist: MakeDist, reg: Registry) -> None:
    assert "late" not in reg.aliases("trigger")
    make_dist(
        "fake-late",
        entry_points={"asyncz.triggers": {"late": "fake_late_mod:Every"}},
        modules={"fake_late_mod": TRIGGER_MODULE},
    )
    assert "late" not in reg.aliases("trigger")
    reg.rescan()
    assert "late" in reg.aliases("trigger")


@pytest.mark.parametrize(
    ("alias", "package"),
    [
        ("redis", "asyncz-redis"),
        ("mongodb", "asyncz-mongo"),
        ("mongo", "asyncz-mongo"),
        ("sqlalchemy", "asyncz-sqlalchemy"),
    ],
)
def test_unknown_first_party_alias_says_what_to_install(
    reg: Registry, alias: str, package: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first-party plugins are installed in the development environment: hide them, as
    # on a machine that has only the core.
    real = metadata.distributions

    def core_only() -> list[metadata.Distribution]:
        return [d for d in real() if d.metadata["Name"] != package]

    monkeypatch.setattr(metadata, "distributions", core_only)
    with pytest.raises(UnknownAliasError) as info:
        reg.resolve("store", alias)
    message = str(info.value)
    assert f"pip install {package}" in message
    assert "asyncz.stores" in message
    assert isinstance(info.value, LookupError)


def test_unknown_alias_lists_installed_and_suggests(make_dist: MakeDist, reg: Registry) -> None:
    make_dist(
        "fake-every",
        entry_points={"asyncz.triggers": {"every": "fake_every_mod:Every"}},
        modules={"fake_every_mod": TRIGGER_MODULE},
    )
    with pytest.raises(UnknownAliasError) as info:
        reg.resolve("trigger", "evrey")
    message = str(info.value)
    assert "Installed:" in message
    assert "every" in info.value.installed
    assert "Did you mean 'every'?" in message
    assert "cron" in info.value.installed  # the core's own built-ins go through the same door


def test_broken_entry_point_names_alias_group_distribution(
    make_dist: MakeDist, reg: Registry
) -> None:
    make_dist(
        "fake-broken",
        version="2.3",
        entry_points={"asyncz.triggers": {"broken": "fake_broken_mod:Thing"}},
        modules={"fake_broken_mod": "import not_a_real_module_xyz\n"},
    )
    with pytest.raises(PluginLoadError) as info:
        reg.resolve("trigger", "broken")
    message = str(info.value)
    for part in ("'broken'", "asyncz.triggers", "fake-broken 2.3", "not_a_real_module_xyz"):
        assert part in message
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    assert isinstance(info.value, ImportError)


def test_two_distributions_claiming_one_alias(make_dist: MakeDist, reg: Registry) -> None:
    for name in ("fake-one", "fake-two"):
        make_dist(
            name,
            entry_points={"asyncz.triggers": {"shared": "fake_shared_mod:Every"}},
            modules={"fake_shared_mod": TRIGGER_MODULE},
        )
    with pytest.raises(AliasConflictError) as info:
        reg.resolve("trigger", "shared")
    assert "fake-one 1.0" in str(info.value)
    assert "fake-two 1.0" in str(info.value)
    assert len(reg.providers("trigger")["shared"]) == 2
    assert reg.claims("trigger") == reg.providers("trigger")  # the earlier name


def test_wrong_base_class(make_dist: MakeDist, reg: Registry) -> None:
    make_dist(
        "fake-wrong",
        entry_points={"asyncz.triggers": {"wrong": "fake_wrong_mod:NotATrigger"}},
        modules={"fake_wrong_mod": TRIGGER_MODULE},
    )
    with pytest.raises(PluginTypeError, match="BaseTrigger"):
        reg.resolve("trigger", "wrong")


def test_class_reference_bypasses_aliases(make_dist: MakeDist, reg: Registry) -> None:
    make_dist("fake-ref", modules={"fake_ref_mod": TRIGGER_MODULE})
    assert reg.resolve_ref("fake_ref_mod:Every", "trigger").__name__ == "Every"
    with pytest.raises(PluginTypeError):
        reg.resolve_ref("fake_ref_mod:NotATrigger", "trigger")
    with pytest.raises(PluginLoadError) as info:
        reg.resolve_ref("fake_ref_mod:Missing", "trigger")
    assert isinstance(info.value.__cause__, AttributeError)


def test_register_and_deregister(make_dist: MakeDist, reg: Registry) -> None:
    make_dist("fake-reg", modules={"fake_reg_mod": TRIGGER_MODULE})
    from fake_reg_mod import Every, NotATrigger  # type: ignore[import-not-found]

    reg.register("trigger", "mine", Every)
    assert reg.resolve("trigger", "mine") is Every
    with pytest.raises(AliasConflictError):
        reg.register("trigger", "mine", Every)
    reg.register("trigger", "mine", "fake_reg_mod:Every", replace=True)
    assert reg.resolve("trigger", "mine") is Every
    with pytest.raises(PluginTypeError):
        reg.register("trigger", "bad", NotATrigger)
    reg.deregister("trigger", "mine")
    with pytest.raises(UnknownAliasError):
        reg.resolve("trigger", "mine")
    with pytest.raises(LookupError):
        reg.deregister("trigger", "mine")
    with pytest.raises(ValueError, match="kind"):
        reg.register("gadget", "x", Every)


def test_registration_shadows_entry_point(make_dist: MakeDist, reg: Registry) -> None:
    make_dist(
        "fake-shadow",
        entry_points={"asyncz.triggers": {"every": "fake_shadow_mod:Every"}},
        modules={"fake_shadow_mod": TRIGGER_MODULE},
    )
    reg.register("trigger", "every", "fake_shadow_mod:Every")
    assert reg.entry("trigger", "every").distribution is None


def test_create_coerces_option_strings(make_dist: MakeDist, reg: Registry) -> None:
    make_dist(
        "fake-create",
        entry_points={"asyncz.triggers": {"every": "fake_create_mod:Every"}},
        modules={"fake_create_mod": TRIGGER_MODULE},
    )
    trigger = reg.create(
        "trigger", {"type": "every", "seconds": "20", "fast": "false"}, key="asyncz.t"
    )
    assert trigger.seconds == 20
    assert trigger.fast is False
    by_class = reg.create("trigger", {"class": "fake_create_mod:Every", "seconds": 3}, key="k")
    assert by_class.seconds == 3


@pytest.fixture
def executor_kind(make_dist: MakeDist, monkeypatch: pytest.MonkeyPatch) -> None:
    """An executor base class of our own (the real one is another engineer's)."""
    make_dist(
        "fake-pool",
        entry_points={"asyncz.executors": {"fakepool": "fake_pool_mod:Pool"}},
        modules={
            "fake_pool_mod": """
            class Base:
                pass

            class Pool(Base):
                def __init__(self, max_workers: int = 10, daemon: bool = True) -> None:
                    self.max_workers = max_workers
                    self.daemon = daemon
            """
        },
    )
    monkeypatch.setitem(
        registry_module.KINDS,
        "executor",
        Kind("executor", "asyncz.executors", "fake_pool_mod:Base"),
    )


@pytest.mark.usefixtures("executor_kind")
def test_create_errors_name_the_dotted_key(reg: Registry) -> None:
    pool = reg.create(
        "executor", {"type": "fakepool", "max_workers": "20"}, key="asyncz.executors.pool"
    )
    assert pool.max_workers == 20
    with pytest.raises(ConfigurationError) as info:
        reg.create(
            "executor",
            {"type": "fakepool", "max_workers": "many"},
            key="asyncz.executors.pool",
        )
    assert info.value.keys == ["asyncz.executors.pool.max_workers"]
    assert "'many'" in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        reg.create("executor", {"type": "fakepool", "max_worker": 2}, key="asyncz.executors.pool")
    assert info.value.keys == ["asyncz.executors.pool.max_worker"]
    assert "did you mean 'max_workers'" in str(info.value)


def test_create_spec_errors(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    real = metadata.distributions
    monkeypatch.setattr(
        metadata,
        "distributions",
        lambda: [d for d in real() if d.metadata["Name"] != "asyncz-redis"],
    )
    with pytest.raises(ConfigurationError, match=r"asyncz.stores.default: needs 'type'"):
        reg.create("store", {"database": 0}, key="asyncz.stores.default")
    with pytest.raises(ConfigurationError, match="not both"):
        reg.create("store", {"type": "a", "class": "b:C"}, key="asyncz.stores.default")
    with pytest.raises(ConfigurationError) as info:
        reg.create("store", {"type": "redis"}, key="asyncz.stores.default")
    assert info.value.keys == ["asyncz.stores.default.type"]
    assert "pip install asyncz-redis" in str(info.value)


def test_nothing_is_imported_at_import_asyncz() -> None:
    code = (
        "import asyncz, sys\n"
        "assert 'pydantic' not in sys.modules, 'pydantic'\n"
        "assert 'pluggy' not in sys.modules, 'pluggy'\n"
        "assert 'asyncz.registry' not in sys.modules, 'registry'\n"
        "assert 'asyncz.settings' not in sys.modules, 'settings'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
