"""The pluggy plugin manager: discovery, allow/deny lists, validation, and every hook."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pluggy
import pytest

from asyncz import hookimpl, hookspecs, plugins
from asyncz.exceptions import PluginLoadError

GOOD = """
from asyncz import hookimpl

seen = []

@hookimpl
def asyncz_event_dispatched(scheduler, event):
    seen.append(event)
"""

MISSPELLED = """
from asyncz import hookimpl

@hookimpl
def asyncz_event_dispatch(scheduler, event):
    pass
"""

MakeDist = Callable[[str, str, str], None]


@pytest.fixture
def make_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeDist]:
    """Fake distribution ``name`` whose ``asyncz`` entry point ``ep`` is module ``source``."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    for variable in ("ASYNCZ_DISABLE_PLUGINS", "ASYNCZ_LOAD_PLUGINS"):
        monkeypatch.delenv(variable, raising=False)

    def make(name: str, ep: str, source: str) -> None:
        module = f"fakehook_{ep}"
        info = root / f"{name.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n", encoding="utf-8"
        )
        (info / "entry_points.txt").write_text(f"[asyncz]\n{ep} = {module}\n", encoding="utf-8")
        (root / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        monkeypatch.delitem(sys.modules, module, raising=False)

    plugins.reset_plugin_manager()
    yield make
    plugins.reset_plugin_manager()


def names() -> set[str]:
    return {p["name"] for p in plugins.plugin_names()}


def test_plugin_is_loaded_on_first_use(make_dist: MakeDist) -> None:
    make_dist("fake-good", "good", GOOD)
    assert "fakehook_good" not in sys.modules
    described = {p["name"]: p for p in plugins.plugin_names()}
    assert described["good"] == {
        "name": "good",
        "distribution": "fake-good",
        "version": "1.0",
        "hooks": ["asyncz_event_dispatched"],
    }
    pm = plugins.get_plugin_manager()
    assert plugins.get_plugin_manager() is pm
    event = SimpleNamespace(code=1)
    pm.hook.asyncz_event_dispatched(scheduler=None, event=event)
    assert sys.modules["fakehook_good"].seen == [event]


@pytest.mark.parametrize("value", ["1", "true", "*", "all", "good", "fake-good", "x, good"])
def test_disable_plugins(make_dist: MakeDist, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    make_dist("fake-good", "good", GOOD)
    monkeypatch.setenv("ASYNCZ_DISABLE_PLUGINS", value)
    assert "good" not in names()


def test_load_plugins_allow_list(make_dist: MakeDist, monkeypatch: pytest.MonkeyPatch) -> None:
    make_dist("fake-good", "good", GOOD)
    make_dist("fake-other", "other", GOOD.replace("seen", "other_seen"))
    monkeypatch.setenv("ASYNCZ_LOAD_PLUGINS", "other")
    assert names() == {"other"}
    plugins.reset_plugin_manager()
    monkeypatch.setenv("ASYNCZ_LOAD_PLUGINS", "fake-good,other")
    assert names() == {"good", "other"}
    plugins.reset_plugin_manager()
    monkeypatch.setenv("ASYNCZ_LOAD_PLUGINS", "")
    assert names() == set()


def test_misspelled_hook_is_an_error(make_dist: MakeDist) -> None:
    make_dist("fake-typo", "typo", MISSPELLED)
    with pytest.raises(pluggy.PluginValidationError, match="asyncz_event_dispatch"):
        plugins.get_plugin_manager()
    rows = {r["name"]: r for r in plugins.describe_hook_plugins()}
    assert "asyncz_event_dispatch" in rows["typo"]["error"]


def test_broken_plugin_raises_plugin_load_error(make_dist: MakeDist) -> None:
    make_dist("fake-broken", "broken", "raise RuntimeError('boom')\n")
    with pytest.raises(PluginLoadError) as info:
        plugins.get_plugin_manager()
    assert "'broken'" in str(info.value)
    assert "fake-broken 1.0" in str(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)
    rows = {r["name"]: r for r in plugins.describe_hook_plugins()}
    assert "boom" in rows["broken"]["error"]
    assert rows["broken"]["hooks"] == []


def test_disabled_plugin_is_still_described(
    make_dist: MakeDist, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_dist("fake-good", "good", GOOD)
    monkeypatch.setenv("ASYNCZ_DISABLE_PLUGINS", "good")
    rows = {r["name"]: r for r in plugins.describe_hook_plugins()}
    assert rows["good"]["enabled"] is False
    assert rows["good"]["hooks"] == ["asyncz_event_dispatched"]


class Recorder:
    """An inline plugin implementing every hook (datasette's testing_plugins pattern)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @hookimpl
    def asyncz_scheduler_started(self, scheduler: Any) -> None:
        self.calls.append(("asyncz_scheduler_started", {"scheduler": scheduler}))

    @hookimpl
    def asyncz_scheduler_shutdown(self, scheduler: Any) -> None:
        self.calls.append(("asyncz_scheduler_shutdown", {"scheduler": scheduler}))

    @hookimpl
    def asyncz_event_dispatched(self, scheduler: Any, event: Any) -> None:
        self.calls.append(("asyncz_event_dispatched", {"event": event}))

    @hookimpl
    def asyncz_task_before_run(self, task: Any, run_time: datetime) -> None:
        self.calls.append(("asyncz_task_before_run", {"task": task, "run_time": run_time}))

    @hookimpl
    def asyncz_task_after_run(
        self, task: Any, return_value: Any, exception: BaseException | None
    ) -> None:
        self.calls.append(("asyncz_task_after_run", {"value": return_value, "exc": exception}))


HOOK_CALLS: dict[str, dict[str, Any]] = {
    "asyncz_scheduler_started": {"scheduler": "s"},
    "asyncz_scheduler_shutdown": {"scheduler": "s"},
    "asyncz_event_dispatched": {"scheduler": "s", "event": "e"},
    "asyncz_task_before_run": {
        "scheduler": "s",
        "task": "t",
        "run_time": datetime(2025, 1, 1, tzinfo=timezone.utc),
    },
    "asyncz_task_after_run": {
        "scheduler": "s",
        "task": "t",
        "run_time": datetime(2025, 1, 1, tzinfo=timezone.utc),
        "return_value": 42,
        "exception": None,
    },
}


def hookspec_names() -> list[str]:
    return sorted(name for name in dir(hookspecs) if name.startswith("asyncz_"))


def test_every_hookspec_has_a_test_here() -> None:
    assert sorted(HOOK_CALLS) == hookspec_names()


@pytest.mark.parametrize("hook", hookspec_names())
def test_every_hook_reaches_an_inline_plugin(hook: str) -> None:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    recorder = Recorder()
    pm.register(recorder, name="recorder")
    try:
        pm.check_pending()
        getattr(pm.hook, hook)(**HOOK_CALLS[hook])
        assert [name for name, _ in recorder.calls] == [hook]
    finally:
        pm.unregister(name="recorder")
    assert pm.get_plugin("recorder") is None
