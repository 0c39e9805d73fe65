"""A private ``redis-server`` for the Redis tests: started on a free port in a temporary
directory, without persistence unless a test asks for it, and stopped at the end.

Under ``CI=true`` a missing ``redis-server`` binary fails the tests; locally they skip with
a message that says how to install it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis


def redis_binary() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if found is None:
        message = (
            "redis-server is not installed: the Redis store tests need a real server "
            "(apt-get install redis-server, or brew install redis)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process on ``port``, data in ``directory``."""

    def __init__(
        self, binary: str, directory: Path, port: int | None = None, *extra_args: str
    ) -> None:
        self.binary = binary
        self.directory = directory
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        # The dump file is only written on `SHUTDOWN SAVE` (restart tests) and read back
        # at the next start; no background saves, no AOF.
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
                "--dbfilename", "dump.rdb",
                "--logfile", str(self.directory / "redis.log"),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                with self.client() as client:
                    client.ping()
                return
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = self.directory / "redis.log"
                    text = log.read_text() if log.exists() else ""
                    raise RuntimeError(f"redis-server did not start on {self.port}:\n{text}")
                time.sleep(0.02)

    def stop(self, save: bool = False) -> None:
        """Stop the server; ``save`` writes its data first, for the next :meth:`start`."""
        process, self.process = self.process, None
        if process is None:
            return
        if save:
            try:
                with self.client() as client:
                    client.shutdown(save=True)
            except redis.ConnectionError:
                pass  # the server closes the connection as it exits
        else:
            process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self, downtime: float = 0.0) -> None:
        """Stop (keeping the data) and start again on the same port."""
        self.stop(save=True)
        time.sleep(downtime)
        self.start()

    def commands_processed(self) -> int:
        with self.client() as client:
            info = client.info("stats")
        return int(info["total_commands_processed"])


@contextlib.contextmanager
def running_redis(directory: Path, *extra_args: str) -> Iterator[RedisServer]:
    """A started redis-server with its data in ``directory``, stopped at the end (the tests'
    one way to have a server; tests/chaos uses it too)."""
    server = RedisServer(redis_binary(), directory, None, *extra_args)
    try:
        server.start()  # inside: a server that started but never answered is stopped too
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The session's private redis-server."""
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def own_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server for one test (which may stop and restart it)."""
    with running_redis(tmp_path / "redis") as server:
        yield server
