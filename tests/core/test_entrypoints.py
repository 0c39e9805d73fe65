"""One scan of the installed entry points serves the component registry and the hook plugins."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from asyncz import plugins
from asyncz.registry import registry

HOOKS = """
from asyncz import hookimpl

@hookimpl
def asyncz_event_dispatched(scheduler, event):
    pass
"""

TRIGGER = """
from asyncz.triggers.base import BaseTrigger

class Never(BaseTrigger):
    __slots__ = ()

    def get_next_trigger_time(self, timezone, previous_time, now=None):
        return None
"""


def test_one_walk_of_distributions_serves_registry_plugins_and_cli() -> None:
    # A fresh process: nothing has been scanned yet, and counting needs no cleanup.
    code = textwrap.dedent(
        """
        from importlib import metadata

        calls = []
        real = metadata.distributions

        def counting(*args, **kwargs):
            calls.append(1)
            return real(*args, **kwargs)

        metadata.distributions = counting

        import asyncz
        from asyncz import plugins
        from asyncz.cli import describe_installed
        from asyncz.registry import registry

        assert calls == [], "imports scanned"
        assert "cron" in registry.aliases("trigger")
        registry.resolve("store", "memory")
        plugins.get_plugin_manager()
        plugins.plugin_names()
        plugins.describe_hook_plugins()
        describe_installed()
        print(len(calls))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"


@pytest.fixture
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "site"
    root.mkdir()
    for variable in ("ASYNCZ_DISABLE_PLUGINS", "ASYNCZ_LOAD_PLUGINS"):
        monkeypatch.delenv(variable, raising=False)
    plugins.reset_plugin_manager()
    try:
        yield root
    finally:
        if str(root) in sys.path:
            sys.path.remove(str(root))
        for module in ("fake_both_hooks", "fake_both_trigger"):
            sys.modules.pop(module, None)
        plugins.reset_plugin_manager()


def install_both(root: Path) -> None:
    """A distribution with a trigger alias and a hook plugin, put on sys.path."""
    info = root / "fake_both-2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-both\nVersion: 2.0\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        "[asyncz.triggers]\nfake-never = fake_both_trigger:Never\n"
        "[asyncz]\nfake_both = fake_both_hooks\n",
        encoding="utf-8",
    )
    (root / "fake_both_hooks.py").write_text(HOOKS, encoding="utf-8")
    (root / "fake_both_trigger.py").write_text(TRIGGER, encoding="utf-8")


def hook_names() -> set[str]:
    return {p["name"] for p in plugins.plugin_names()}


@pytest.mark.parametrize("forget", ["registry.rescan", "plugins.reset_plugin_manager"])
def test_forgetting_the_scan_refreshes_both_readers(
    fake_site: Path, monkeypatch: pytest.MonkeyPatch, forget: str
) -> None:
    # Both readers have read the scan before the distribution appears ...
    assert "fake-never" not in registry.aliases("trigger")
    assert "fake_both" not in hook_names()
    monkeypatch.syspath_prepend(str(fake_site))
    install_both(fake_site)
    assert "fake-never" not in registry.aliases("trigger")
    # ... and either way of forgetting it lets both find it.
    if forget == "registry.rescan":
        registry.rescan()
        # The plugin manager already built keeps its plugins until it is reset, as before;
        # a fresh manager reads the new scan.
        described = {r["name"]: r for r in plugins.describe_hook_plugins()}
        assert described["fake_both"]["distribution"] == "fake-both"
    else:
        plugins.reset_plugin_manager()
        assert "fake_both" in hook_names()
    entry = registry.entry("trigger", "fake-never")
    assert (entry.distribution, entry.version) == ("fake-both", "2.0")
    assert registry.resolve("trigger", "fake-never").__name__ == "Never"


def test_a_resolved_alias_is_forgotten_with_the_scan(
    fake_site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(fake_site))
    install_both(fake_site)
    plugins.reset_plugin_manager()
    assert registry.resolve("trigger", "fake-never").__name__ == "Never"
    sys.path.remove(str(fake_site))  # the distribution is uninstalled
    plugins.reset_plugin_manager()
    assert "fake-never" not in registry.aliases("trigger")
    with pytest.raises(LookupError, match="fake-never"):
        registry.resolve("trigger", "fake-never")
