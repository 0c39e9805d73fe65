"""The ``asyncz`` command line, through click's CliRunner and as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from asyncz.cli import main


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.upper().startswith("ASYNCZ_"):
            monkeypatch.delenv(name)
    return tmp_path


def test_plugins_json_lists_the_core() -> None:
    result = CliRunner().invoke(main, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)["distributions"]}
    assert "cron" in rows["asyncz"]["aliases"]["asyncz.triggers"]


def test_plugins_text_shows_broken_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    info = site / "fake_cli-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-cli\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[asyncz.triggers]\nfakebroken = fake_cli_missing_mod:Nope\n"
        "[asyncz]\nfake_cli_hooks = fake_cli_missing_hooks\n"
    )
    monkeypatch.syspath_prepend(str(site))
    from asyncz.registry import registry

    registry.rescan()
    try:
        result = CliRunner().invoke(main, ["plugins"])
        assert result.exit_code == 0, result.output
        assert "fake-cli 1.0" in result.output
        assert "asyncz.triggers: fakebroken" in result.output
        assert "ERROR asyncz.triggers 'fakebroken'" in result.output
        assert "ERROR asyncz 'fake_cli_hooks'" in result.output
        data = json.loads(CliRunner().invoke(main, ["plugins", "--json"]).output)
        fake = next(r for r in data["distributions"] if r["name"] == "fake-cli")
        assert {e["name"] for e in fake["errors"]} == {"fakebroken", "fake_cli_hooks"}
    finally:
        monkeypatch.undo()
        registry.rescan()


def test_config_show_text_and_sources(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (isolated / "asyncz.toml").write_text('timezone = "UTC"\n[task_defaults]\ncoalesce = false\n')
    monkeypatch.setenv("ASYNCZ_LOCK_PATH", "/tmp/lock-{store}")
    monkeypatch.setenv("ASYNCZ_SECRET_KEY", "hunter2")
    result = CliRunner().invoke(main, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert "asyncz.toml" in result.output
    assert "hunter2" not in result.output
    lines = {line.split(" = ")[0].strip(): line for line in result.output.splitlines()}
    assert lines["asyncz.timezone"].endswith("# toml: " + str(isolated / "asyncz.toml"))
    assert lines["asyncz.lock_path"].endswith("# env: ASYNCZ_LOCK_PATH")
    assert lines["asyncz.task_defaults.max_instances"].endswith("# default")
    assert '"1.0"' not in lines["asyncz.effective_startup_delay"]


def test_config_show_json_with_explicit_file(isolated: Path) -> None:
    path = isolated / "conf.toml"
    path.write_text(
        '[asyncz]\nlogger_name = "worker-a"\n[asyncz.stores.default]\ntype = "memory"\n'
    )
    result = CliRunner().invoke(main, ["config", "show", "--json", "--config", str(path)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["config_file"] == str(path)
    rows = {row["key"]: row for row in data["settings"]}
    assert rows["asyncz.logger_name"]["value"] == "worker-a"
    assert rows["asyncz.stores.default.type"]["source"] == "toml"


def test_config_show_reports_configuration_errors(isolated: Path) -> None:
    (isolated / "asyncz.toml").write_text("[task_defaults]\nmax_instance = 2\n")
    result = CliRunner().invoke(main, ["config", "show"])
    assert result.exit_code == 1
    assert "asyncz.task_defaults.max_instance" in result.output
    assert "did you mean 'max_instances'" in result.output


def test_secrets_masked_in_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCZ_SECRET_KEY", "hunter2")
    result = CliRunner().invoke(main, ["config", "show", "--json"])
    assert "hunter2" not in result.output
    shown = CliRunner().invoke(main, ["config", "show", "--json", "--show-secrets"])
    assert "hunter2" in shown.output


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert "asyncz" in result.output


@pytest.mark.parametrize(
    "command",
    [
        [str(Path(sys.executable).with_name("asyncz")), "plugins", "--json"],
        [sys.executable, "-m", "asyncz", "plugins", "--json"],
    ],
    ids=["console-script", "python-m"],
)
def test_real_subprocess(command: list[str]) -> None:
    if not Path(command[0]).exists():
        pytest.fail(f"{command[0]} is not installed; run scripts/bootstrap")
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    names = {row["name"] for row in json.loads(done.stdout)["distributions"]}
    assert "asyncz" in names


# -- options are validated; bare asyncz is help -------------------------------------------------
def test_bare_asyncz_prints_its_help_and_exits_0() -> None:
    result = CliRunner().invoke(main, [])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and "run" in result.output and "plugins" in result.output


@pytest.mark.parametrize(
    ("option", "value"), [("--log-level", "bogus"), ("--duration", "-1")], ids=["level", "duration"]
)
def test_run_options_are_validated(isolated: Path, option: str, value: str) -> None:
    config = isolated / "asyncz.toml"
    config.write_text('timezone = "UTC"\n')
    result = CliRunner().invoke(main, ["run", str(config), option, value])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.output
    assert "Scheduler started" not in result.output


def test_log_level_is_case_insensitive(isolated: Path) -> None:
    config = isolated / "asyncz.toml"
    config.write_text('timezone = "UTC"\n')
    result = CliRunner().invoke(
        main, ["run", str(config), "--log-level", "debug", "--duration", "0"]
    )
    assert result.exit_code == 0, result.output
