"""A custom ``loggers_class`` reachable as ``"_lifecycle_logging:RecordingLogging"``."""

from __future__ import annotations

import logging

from asyncz.schedulers.base import ClassicLogging

created: list[str] = []


class RecordingLogging(ClassicLogging):
    """Prefixes every logger with ``custom.`` and remembers the names it was asked for."""

    def __missing__(self, name: str) -> logging.Logger:
        created.append(name)
        logger = logging.getLogger(f"custom.{name}")
        self[name] = logger
        return logger
