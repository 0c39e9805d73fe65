"""``asyncz doctor`` exit codes, and what an operator's process never does."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import Deployment, free_port, one_line_error
from click.testing import CliRunner

from asyncz.cli import main
from asyncz.exceptions import TaskLookupError
from asyncz.operator import OperatorError, open_operator


def test_an_operator_never_runs_deletes_or_registers(sqlite_deployment: Deployment) -> None:
    d = sqlite_deployment
    # Due at once, and a shutdown task: a scheduler would run the one now and the other at
    # its shutdown (and then delete both). The CLI opens and closes the store many times.
    assert d.cli("tasks", "add", "jobs:tick", "date", "--id", "now").exit_code == 0
    assert d.cli("tasks", "add", "jobs:other", "shutdown", "--id", "bye").exit_code == 0
    for args in (("tasks", "list"), ("tasks", "show", "now"), ("nodes",), ("doctor",)):
        result = d.cli(*args)
        assert result.exit_code == 0, (args, result.output)
    listed = json.loads(d.cli("tasks", "list", "--json").output)["tasks"]
    assert sorted(t["id"] for t in listed) == ["bye", "now"]
    assert not d.ticks_file.exists()
    assert not (d.directory / "other.txt").exists()
    assert json.loads(d.cli("nodes", "--json").output) == {"nodes": []}


def test_the_operator_refuses_to_run_a_task_itself(sqlite_deployment: Deployment) -> None:
    d = sqlite_deployment
    assert d.cli("tasks", "add", "jobs:tick", "interval", "hours=1", "--id", "t").exit_code == 0

    async def check() -> None:
        async with open_operator(d.config) as operator:
            before = await operator.get_task_info_async("t")
            with pytest.raises(OperatorError, match="a live node runs it"):
                await operator.run_task_async("t")
            assert await operator.get_task_info_async("t") == before
            assert operator.state.name == "STATE_PAUSED"
            assert operator._main_task is None  # no processing loop

    asyncio.run(check())
    assert not d.ticks_file.exists()


def test_doctor_healthy_then_an_unrestorable_task(sqlite_deployment: Deployment) -> None:
    d = sqlite_deployment
    result = d.cli_process("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "healthy" in result.stdout or "warning" in result.stdout

    (d.directory / "extra.py").write_text("def fn():\n    pass\n")
    result = d.cli("tasks", "add", "extra:fn", "interval", "hours=1", "--id", "broken")
    assert result.exit_code == 0, result.output
    (d.directory / "extra.py").unlink()  # the callable no longer imports

    result = d.cli_process("doctor", "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    findings = json.loads(result.stdout)["findings"]
    [broken] = [f for f in findings if f["check"] == "store default task broken"]
    assert broken["status"] == "error"
    assert "No module named 'extra'" in broken["detail"]

    result = d.cli_process("tasks", "show", "broken")
    assert result.returncode == 0, result.stderr
    assert "unrestorable" in result.stdout
    result = d.cli_process("tasks", "pause", "broken")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "'broken'" in line and "cannot be restored" in line
    # Removing it works (and is how an operator clears it).
    assert d.cli_process("tasks", "remove", "broken").returncode == 0
    assert d.cli_process("doctor").returncode == 0


def test_an_unreachable_store_exits_2(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "asyncz.toml"
    config.write_text(f'[stores.default]\ntype = "redis"\nurl = "redis://127.0.0.1:{port}/0"\n')
    result = CliRunner().invoke(main, ["tasks", "list", "--config", str(config)])
    assert result.exit_code == 2, result.output
    line = one_line_error(result)
    assert "'default'" in line and "unreachable" in line and str(port) in line

    result = CliRunner().invoke(main, ["doctor", "--config", str(config), "--json"])
    assert result.exit_code == 2, result.output
    report = json.loads(result.output)
    [store] = [f for f in report["findings"] if f["check"] == "store default"]
    assert store["status"] == "unreachable"


def test_doctor_names_a_bad_configuration_key(tmp_path: Path) -> None:
    config = tmp_path / "asyncz.toml"
    config.write_text(
        '[stores.default]\ntype = "sqlalchemy"\ndatabase = "sqlite://"\n[coordination]\nleese = 3\n'
    )
    result = CliRunner().invoke(main, ["doctor", "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert "asyncz.coordination.leese" in result.output
    result = CliRunner().invoke(main, ["tasks", "list", "--config", str(config)])
    assert result.exit_code == 1
    assert "asyncz.coordination.leese" in one_line_error(result)


def test_a_store_in_memory_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "asyncz.toml"
    config.write_text('[stores.default]\ntype = "memory"\n')
    result = CliRunner().invoke(main, ["tasks", "list", "--config", str(config)])
    assert result.exit_code == 1
    assert "asyncz.stores.default" in one_line_error(result)
    result = CliRunner().invoke(main, ["doctor", "--config", str(config)])
    assert result.exit_code == 1


def test_shell_completion_through_click(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "_ASYNCZ_COMPLETE": "bash_complete",
        "COMP_WORDS": "asyncz tas",
        "COMP_CWORD": "1",
    }
    out = subprocess.run(
        [sys.executable, "-m", "asyncz"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "tasks" in out.stdout


def test_unknown_id_in_a_fresh_process_is_one_line(sqlite_deployment: Deployment) -> None:
    result = sqlite_deployment.cli_process("tasks", "resume", "nope")
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: {TaskLookupError('nope')}"
