"""Scheduler state and logger cache, shared by the scheduler and its processing loop.

Data path: ``start()`` moves :class:`SchedulerState` to running, which lets the processing
loop (:mod:`asyncz.schedulers._processing`) run passes; ``pause()``/``shutdown()`` move it
on. :class:`ClassicLogging` hands out the loggers every step reports to.
Re-exported from :mod:`asyncz.schedulers.base`.
"""

from __future__ import annotations

import enum
import logging

__all__ = ["ClassicLogging", "SchedulerState"]


class SchedulerState(enum.IntEnum):
    STATE_STOPPED = 0
    STATE_RUNNING = 1
    STATE_PAUSED = 2


class ClassicLogging(dict[str, logging.Logger]):
    """A cache of loggers by name; ``__missing__`` creates one with :func:`logging.getLogger`.

    Subclass it and override ``__missing__`` to change how loggers are made, then pass the
    subclass (or its ``"module:Name"``) as ``loggers_class``.
    """

    def __missing__(self, name: str) -> logging.Logger:
        logger = logging.getLogger(name)
        self[name] = logger
        return logger
