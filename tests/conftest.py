"""Shared fixtures: every test runs with a clean asyncz environment."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_asyncz_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No ASYNCZ_* variable or asyncz.toml of the developer's leaks into a test."""
    for name in list(os.environ):
        if name.startswith("ASYNCZ_") and not name.startswith("ASYNCZ_TEST_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
