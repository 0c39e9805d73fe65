"""Callables for tasks that run in other processes (importable by ``module:qualname``)."""

from __future__ import annotations

import os


def mark(path: str, key: str) -> None:
    """Append ``key`` and the pid to ``path`` (one line per run; atomic for short writes)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{key} {os.getpid()}\n".encode())
    finally:
        os.close(fd)
