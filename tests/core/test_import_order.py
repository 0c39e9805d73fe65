"""No module-level import cycle in the core: every module of ``asyncz`` imports first, in an
interpreter where no other ``asyncz`` module has been imported yet."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import importlib, json, pkgutil, sys
import asyncz
names = sorted(m.name for m in pkgutil.walk_packages(asyncz.__path__, "asyncz."))
failed = {}
for name in names:
    for loaded in [m for m in sys.modules if m == "asyncz" or m.startswith("asyncz.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"names": names, "failed": failed}))
"""


def test_every_core_module_imports_first() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"asyncz.abc", "asyncz.schedulers._dispatch", "asyncz.schedulers.base"} <= set(
        result["names"]
    )
    assert result["failed"] == {}
