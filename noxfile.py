"""Every check of the repository, one session per concern.

    nox -s tests-3.12        the whole suite on one Python (3.10 to 3.13)
    nox -s lint              ruff check and ruff format --check
    nox -s typecheck         mypy (strict on the core)
    nox -s bench             the benchmarks (see docs/benchmarks.md)

Python interpreters are found on PATH and, on machines that use pyenv, in its versions.
"""

from __future__ import annotations

import glob
import os
import time
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

_pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
_extra = sorted(glob.glob(os.path.join(_pyenv, "versions", "3.1[0-9]*", "bin")))
if _extra:
    os.environ["PATH"] = os.pathsep.join([*_extra, os.environ.get("PATH", "")])


def distributions() -> list[str]:
    """Every distribution of the repository, core first."""
    dists = ["asyncz_core"]
    dists += [p for p in ("asyncz_redis", "asyncz_mongo") if (ROOT / p / "pyproject.toml").exists()]
    dists += sorted(
        str(p.parent.relative_to(ROOT)) for p in ROOT.glob("plugins/asyncz_*/pyproject.toml")
    )
    return dists


def install_all(session: nox.Session) -> None:
    args: list[str] = []
    for dist in distributions():
        args += ["-e", dist]
    session.install(*args, "-r", "requirements/test.txt")


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole suite (the tests start their own servers)."""
    install_all(session)
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff: lint rules and formatting."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """mypy, strict on the core (see [tool.mypy] in pyproject.toml)."""
    install_all(session)
    session.install("mypy>=1.11")
    session.run("mypy", "asyncz_core/src", *[f"{d}/src" for d in distributions()[1:]])


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Benchmarks against Asyncz 0.17.2, APScheduler 3.11.3 and APScheduler 4.0.0a6 (side by
    side and with several nodes on one store), asyncz's scale curves, and the charts of
    docs/benchmarks.md (see benchmarks/README.md).

    asyncz (this tree) runs in the session's venv; each peer gets a venv of its own in
    .nox/bench-peers/<lib> on the same interpreter, with the drivers of its stores.
    ``nox -s bench -- --quick`` for a smoke run; other arguments go to benchmarks/run.py.
    """
    began = time.time()
    install_all(session)
    # the PostgreSQL driver of asyncz's SQL store; matplotlib for the charts (this session only)
    session.install("asyncpg>=0.28", "pyinstrument", "matplotlib")
    drivers = ["redis", "pymongo", "sqlalchemy", "psycopg2-binary"]
    peers = {
        "asyncz-0.17.2": ["asyncz==0.17.2", *drivers],
        "apscheduler-3.11.3": ["apscheduler==3.11.3", *drivers],
        # The side-by-side scenarios (adapters/apscheduler_4.py: memory, PostgreSQL through
        # asyncpg, SQLite through aiosqlite) and benchmarks/bench_nodes.py: PostgreSQL data
        # store + asyncpg event broker. It imports
        # sniffio without declaring it, and its asyncpg listener fails under anyio 4.16 (no
        # current loop in the callback): the anyio of its release. SQLAlchemy >= 2.1 needs
        # the [asyncio] extra for greenlet.
        "apscheduler-4.0.0a6": ["apscheduler==4.0.0a6", "asyncpg", "sqlalchemy[asyncio]",
                                "psycopg", "sniffio", "anyio==4.9.0", "aiosqlite"],
    }  # fmt: skip
    python = session.run(
        "python", "-c", "import sys; print(sys._base_executable)", silent=True
    ).strip()
    for lib, spec in peers.items():
        venv = ROOT / ".nox" / "bench-peers" / lib
        stamp = venv / ".bench-stamp"
        wanted = " ".join(spec)
        if stamp.exists() and stamp.read_text() == wanted:
            continue
        session.run(python, "-m", "venv", "--clear", str(venv), external=True)
        session.run(str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *spec,
                    external=True)  # fmt: skip
        stamp.write_text(wanted)
    # `-- --only nodes`: only benchmarks/bench_nodes.py; `--only` without "nodes": only run.py.
    args = list(session.posargs)
    only = next((a.split("=", 1)[1] if "=" in a else args[i + 1]
                 for i, a in enumerate(args) if a.startswith("--only")), None)  # fmt: skip
    if only is None or not set(only.split(",")) <= {"nodes", "scale", "history"}:
        session.run("python", "benchmarks/run.py", *args)
    flags = [a for a in args if a in ("--quick", "--no-doc")]
    if only is None or "nodes" in only.split(","):
        # Several nodes on one store (asyncz and APScheduler 4): the "Several nodes" section.
        session.run("python", "benchmarks/bench_nodes.py", *flags)
    if only is None or "scale" in only.split(","):
        # Scale curves, asyncz only: the "Scale" section.
        session.run("python", "benchmarks/bench_scale.py", *flags)
    if only is None or "history" in only.split(","):
        # History on and off (issue 17): the table "History cost in this run".
        rounds = "2" if "--quick" in args else "8"
        session.run("python", "benchmarks/bench_history.py", "--rounds", rounds, "--seconds",
                    "3", "--save", "benchmarks/results/history.json")  # fmt: skip
        if "--no-doc" not in args:
            session.run("python", "benchmarks/run.py", "--render",
                        "benchmarks/results/latest.json")  # fmt: skip
    if "--no-doc" not in args:
        session.run("python", "benchmarks/plots.py")  # docs/images/bench-*.png from results/
        if only is None:
            session.run("python", "benchmarks/run.py", "--stamp-total", str(began))
