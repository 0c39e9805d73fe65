"""A throw-away PostgreSQL cluster for tests and benchmarks.

:class:`TemporaryPostgres` runs ``initdb`` into a temporary directory and ``pg_ctl`` on a
free port of 127.0.0.1 (plus a Unix socket in the same directory), with durability turned
off for speed. When the process runs as root (PostgreSQL refuses that), both commands run as
the ``postgres`` user through ``runuser``, and the directory is handed over to that user::

    with TemporaryPostgres() as pg:
        store = SQLAlchemyStore(database=pg.url)
        ...
        pg.restart()  # a server restart under a running scheduler
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from types import TracebackType

__all__ = ["PostgresUnavailable", "TemporaryPostgres", "find_pg_bin"]


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries cannot be found or run on this machine."""


def find_pg_bin() -> str:
    """The directory holding ``initdb`` and ``pg_ctl`` (``PATH`` first, then Debian's layout)."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return os.path.dirname(initdb)
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "initdb")):
            return candidate
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH or in "
        "/usr/lib/postgresql/*/bin; install them (apt-get install postgresql) to run these tests"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TemporaryPostgres:
    """A PostgreSQL cluster in a temporary directory, removed by :meth:`close`."""

    #: The server settings given to ``pg_ctl start`` after the port and sockets: durability
    #: off for speed (a subclass that needs acknowledged commits to survive a crash of the
    #: server turns ``synchronous_commit`` back on).
    settings = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"

    def __init__(self, port: int | None = None) -> None:
        self.bin = find_pg_bin()
        self.port = port or _free_port()
        self.as_postgres = hasattr(os, "geteuid") and os.geteuid() == 0
        self.root = tempfile.mkdtemp(prefix="asyncz-pg-")
        self.data = os.path.join(self.root, "data")
        self.log = os.path.join(self.root, "server.log")
        self.running = False
        if self.as_postgres:
            if shutil.which("runuser") is None:
                raise PostgresUnavailable("running as root, and runuser is not available")
            shutil.chown(self.root, user="postgres")
        self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")  # fmt: skip

    @property
    def url(self) -> str:
        """A plain URL of the ``postgres`` database (the store maps it to asyncpg)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        command = [os.path.join(self.bin, program), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PostgresUnavailable(
                f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}"
                + self._log_tail()
            )

    def _log_tail(self) -> str:
        try:
            with open(self.log, encoding="utf-8", errors="replace") as handle:
                return "\n" + handle.read()[-2000:]
        except OSError:
            return ""

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 {self.settings}"
        self._run("pg_ctl", "-D", self.data, "-o", options, "-l", self.log, "-w", "start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        if self.running:
            self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")
            self.running = False

    def restart(self) -> None:
        """Stop the server (dropping every connection) and start it again on the same port."""
        self.stop()
        self.start()

    def close(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> TemporaryPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
