"""The deployment under test (see conftest.py): its files, its node process, the CLI."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from asyncz.cli import main
from asyncz.testing import wait_until

JOBS = """
import pathlib
import time

HERE = pathlib.Path(__file__).parent


def tick():
    with open(HERE / "ticks.txt", "a") as f:
        f.write(f"{time.time()}\\n")


def other():
    with open(HERE / "other.txt", "a") as f:
        f.write(f"{time.time()}\\n")
"""


def toml_table(options: dict[str, Any]) -> str:
    return "\n".join(f"{key} = {value!r}".replace("'", '"') for key, value in options.items())


class Deployment:
    """The files of a deployment, its node process and the CLI pointed at its config."""

    def __init__(self, directory: Path, store: dict[str, Any], backend: str) -> None:
        self.directory = directory
        self.backend = backend
        self.config = directory / "asyncz.toml"
        self.ticks_file = directory / "ticks.txt"
        self.node_log = directory / "node.log"
        self.node: subprocess.Popen[bytes] | None = None
        (directory / "jobs.py").write_text(JOBS)
        self.config.write_text(
            textwrap.dedent(
                """
                timezone = "UTC"
                identity = "node-1"

                [coordination]
                lease = 2

                [tasks.tick]
                fn = "jobs:tick"
                trigger = { type = "interval", seconds = 0.25 }
                misfire_grace_time = 5

                [stores.default]
                """
            )
            + toml_table(store)
            + "\n"
        )

    # -- the CLI ---------------------------------------------------------------------------
    def cli(self, *args: str) -> Result:
        """``asyncz ARGS --config asyncz.toml`` in this process."""
        return CliRunner().invoke(main, [*args, "--config", str(self.config)])

    def cli_process(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The installed ``asyncz`` command in its own process (a fresh interpreter)."""
        return subprocess.run(
            [sys.executable, "-m", "asyncz", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.directory,
        )

    def backend_is_coordinated(self) -> bool:
        return coordinated(self)

    # -- the node ----------------------------------------------------------------------------
    def ticks(self) -> list[float]:
        if not self.ticks_file.exists():
            return []
        return [float(line) for line in self.ticks_file.read_text().split()]

    def start_node(self) -> None:
        with open(self.node_log, "ab") as log:
            self.node = subprocess.Popen(
                [sys.executable, "-m", "asyncz", "run", str(self.config), "--log-level", "INFO"],
                cwd=self.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until(lambda: len(self.ticks()) >= 2, timeout=30, what="the node's first runs")
        except AssertionError:
            raise AssertionError(f"the node did not run tick:\n{self.node_log.read_text()}")

    def stop_node(self) -> None:
        node, self.node = self.node, None
        if node is None:
            return
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(timeout=20)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def store_options(request: pytest.FixtureRequest, backend: str, directory: Path) -> dict[str, Any]:
    """The store table of the deployment; ``poll_interval``: the node sees the CLI's changes
    to a task it is not waiting for (a resumed one) within half a second."""
    unique = uuid.uuid4().hex[:8]
    if backend == "sqlite":
        database = f"sqlite:///{directory / 'tasks.db'}"
        return {"type": "sqlalchemy", "database": database, "poll_interval": 0.5}
    if backend == "redis":
        server = request.getfixturevalue("redis_server")
        return {
            "type": "redis",
            "url": server.url,
            "tasks_key": f"cli.{unique}.tasks",
            "run_times_key": f"cli.{unique}.run_times",
            "poll_interval": 0.5,
        }
    url = request.getfixturevalue("postgres_url")
    return {
        "type": "sqlalchemy",
        "database": url,
        "tablename": f"cli_{unique}",
        "poll_interval": 0.5,
    }


def one_line_error(result: Result) -> str:
    """The error of a failed command: exactly one line, returned."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def free_port() -> int:
    """A local port where nothing listens (an unreachable server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def coordinated(deployment: Deployment) -> bool:
    """Whether the deployment's store keeps node records for other processes to read."""
    from asyncz.operator import OperatorScheduler

    operator = OperatorScheduler(config_file=str(deployment.config))
    return operator.stores["default"].coordinated
