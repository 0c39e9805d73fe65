"""The plugin template, built and pip-installed as a real distribution, as users do."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from asyncz import plugins
from asyncz.registry import registry

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "plugins" / "_template"
DIST = "asyncz-plugin-template"

pytestmark = pytest.mark.pip


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def installed() -> bool:
    try:
        metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        return False
    return True


def test_template_installs_registers_and_uninstalls(tmp_path: Path) -> None:
    if installed():
        pytest.skip(f"{DIST} is already installed in this environment; not touching it")
    build = ["wheel", "--no-deps", "-w", str(tmp_path), str(TEMPLATE)]
    if importlib.util.find_spec("hatchling") is not None:
        build.insert(1, "--no-build-isolation")  # no network needed
    built = pip(*build)
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("asyncz_plugin_template-*.whl")
    try:
        done = pip("install", "--no-deps", str(wheel))
        assert done.returncode == 0, done.stderr
        registry.rescan()
        plugins.reset_plugin_manager()

        cls = registry.resolve("trigger", "template-every")
        assert cls.__module__ == "asyncz_plugin_template.trigger"
        trigger = registry.create(
            "trigger", {"type": "template-every", "seconds": "30"}, key="asyncz.tasks.t.trigger"
        )
        assert trigger.seconds == 30.0
        hook_plugins = {p["name"]: p for p in plugins.plugin_names()}
        assert hook_plugins["asyncz_plugin_template"]["hooks"] == ["asyncz_event_dispatched"]

        listed = subprocess.run(
            [sys.executable, "-m", "asyncz", "plugins", "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        rows = {r["name"]: r for r in json.loads(listed.stdout)["distributions"]}
        row = rows[DIST]
        assert row["version"] == "0.1.0"
        assert row["aliases"] == {"asyncz.triggers": ["template-every"]}
        assert row["hooks"] == {"asyncz_plugin_template": ["asyncz_event_dispatched"]}
        assert row["errors"] == []

        own_tests = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
            cwd=TEMPLATE,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert own_tests.returncode == 0, own_tests.stdout + own_tests.stderr
    finally:
        removed = pip("uninstall", "-y", DIST)
        for module in [m for m in sys.modules if m.startswith("asyncz_plugin_template")]:
            del sys.modules[module]
        registry.rescan()
        plugins.reset_plugin_manager()
    assert removed.returncode == 0, removed.stderr
    assert not installed()
    assert "template-every" not in registry.aliases("trigger")
