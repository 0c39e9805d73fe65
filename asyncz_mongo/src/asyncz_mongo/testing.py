"""A throw-away MongoDB wire-protocol server for tests and benchmarks.

No MongoDB server is needed: :class:`TemporaryMongoeco` runs `mongoeco
<https://pypi.org/project/mongoeco/>`_ (``mongoeco[wire]``, Python >= 3.13, usually in a
virtual environment of its own) as a subprocess on a free local port, with its documents
in a SQLite file of a temporary directory so that they survive :meth:`~TemporaryMongoeco.restart`
and :meth:`~TemporaryMongoeco.kill` followed by :meth:`~TemporaryMongoeco.start`. The real
PyMongo driver talks to it over TCP.

    server = TemporaryMongoeco(python=".venv-mongoeco/bin/python")
    server.start()
    store = MongoDBStore(url=server.url)
    ...
    server.close()
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["MongoUnavailable", "TemporaryMongoeco", "free_port"]

_LAUNCHER = Path(__file__).with_name("_mongoeco_server.py")


class MongoUnavailable(RuntimeError):
    """The test server cannot be started (no interpreter, not installed, did not answer)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class TemporaryMongoeco:
    """A mongoeco wire server subprocess: start, stop, kill, restart on the same port.

    :param python: the interpreter that has ``mongoeco[wire]`` installed.
    :param port: the port to listen on (a free one by default); it stays the same across
        restarts.
    :param data_dir: where the SQLite file and the server log go (a temporary directory,
        removed by :meth:`close`, by default).
    :param startup_timeout: seconds to wait for the server to answer ``ping``.
    :param persistent: keep the documents in a SQLite file of ``data_dir`` (they survive a
        restart); ``False`` keeps them in the server's memory (faster, lost on restart).
    """

    def __init__(
        self,
        python: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
        persistent: bool = True,
    ) -> None:
        self.python = str(python)
        self.host = host
        self.port = port if port is not None else free_port(host)
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="asyncz-mongoeco-"))
        self.startup_timeout = startup_timeout
        self.persistent = persistent
        self.version: str | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "mongoeco.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server and wait until it answers ``ping`` (:class:`MongoUnavailable`
        if it does not within ``startup_timeout``)."""
        if self.running:
            return
        if not Path(self.python).exists():
            raise MongoUnavailable(f"no interpreter at {self.python}")
        command = [
            self.python,
            str(_LAUNCHER),
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        if self.persistent:
            command += ["--data", str(self.data_dir / "data.sqlite3")]
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        from pymongo import MongoClient
        from pymongo.errors import PyMongoError

        deadline = time.monotonic() + self.startup_timeout
        client: MongoClient[dict[str, object]] = MongoClient(
            self.url, serverSelectionTimeoutMS=250, connectTimeoutMS=250
        )
        try:
            while True:
                process = self._process
                if process is None or process.poll() is not None:
                    raise MongoUnavailable(
                        f"mongoeco exited with status {process and process.returncode}:\n"
                        + self._log_tail()
                    )
                try:
                    client.admin.command("ping")
                    hello = client.admin.command("hello")
                except PyMongoError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise MongoUnavailable(
                            f"mongoeco did not answer ping on {self.url} within "
                            f"{self.startup_timeout}s:\n{self._log_tail()}"
                        ) from None
                    time.sleep(0.05)
                    continue
                self.version = str(hello.get("version"))
                return
        finally:
            client.close()

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server gracefully (SIGTERM; SIGKILL after ``timeout``)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL), as a crash would."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its temporary directory."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> TemporaryMongoeco:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
