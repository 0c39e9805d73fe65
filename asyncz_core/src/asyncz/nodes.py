"""Nodes: the scheduler instances that share a store, as the store records them.

Data path: a processing scheduler (a *node*, named by its ``identity``) writes its
:class:`NodeInfo` into every store it shares with other processes when it starts and again at
each heartbeat (:meth:`asyncz.abc.Store.heartbeat`), which also extends the leases on the due
runs it holds. A node whose heartbeat lapsed for longer than its lease is *dead*: its claims
lapse with it and another node takes its due runs over. ``scheduler.get_nodes()`` reads the
records back.
"""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = ["NODE_RETENTION", "NodeInfo", "NodeState", "default_identity"]

_UTC = timezone.utc

#: Seconds a store keeps the record of a node that stopped or died (for ``get_nodes()``).
NODE_RETENTION = 3600.0


def default_identity() -> str:
    """A scheduler's name when none is configured: ``host:pid:random``."""
    import secrets

    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class NodeState:
    """What :attr:`NodeInfo.state` says."""

    ALIVE = "alive"  #: heartbeats arrive within the lease
    DEAD = "dead"  #: the last heartbeat is older than the lease (crashed, cut off, frozen)
    STOPPED = "stopped"  #: shut down cleanly (its claims were released)


@dataclass(frozen=True)
class NodeInfo:
    """One scheduler instance sharing a store.

    ``lease`` is the node's lease in seconds (``asyncz.coordination.lease``): its claims
    lapse, and it counts as dead, ``lease`` seconds after ``last_heartbeat``.
    """

    identity: str
    host: str
    pid: int
    version: str
    started_at: datetime
    last_heartbeat: datetime
    lease: float
    stopped_at: datetime | None = None

    @classmethod
    def for_this_process(cls, identity: str, lease: float, started_at: datetime) -> NodeInfo:
        from asyncz import __version__

        return cls(
            identity=identity,
            host=socket.gethostname(),
            pid=os.getpid(),
            version=__version__,
            started_at=started_at,
            last_heartbeat=started_at,
            lease=lease,
        )

    @property
    def expires_at(self) -> datetime:
        """When the node's claims lapse unless it heartbeats again."""
        return self.last_heartbeat + timedelta(seconds=self.lease)

    def state_at(self, now: datetime) -> str:
        if self.stopped_at is not None:
            return NodeState.STOPPED
        return NodeState.ALIVE if now <= self.expires_at else NodeState.DEAD

    @property
    def state(self) -> str:
        """``alive``, ``dead`` or ``stopped``, judged by this process's clock now."""
        return self.state_at(datetime.now(_UTC))

    @property
    def alive(self) -> bool:
        return self.state == NodeState.ALIVE

    def beat(self, now: datetime) -> NodeInfo:
        """This record with a heartbeat at ``now``."""
        return replace(self, last_heartbeat=now)

    def stopped(self, now: datetime) -> NodeInfo:
        return replace(self, last_heartbeat=now, stopped_at=now)

    # -- what stores keep ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (datetimes as ISO 8601 strings) for a store to keep."""
        data = asdict(self)
        for key in ("started_at", "last_heartbeat", "stopped_at"):
            value = data[key]
            data[key] = value.isoformat() if value is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeInfo:
        """The inverse of :meth:`to_dict` (unknown keys are ignored)."""
        stopped = data.get("stopped_at")
        return cls(
            identity=str(data["identity"]),
            host=str(data.get("host", "")),
            pid=int(data.get("pid", 0)),
            version=str(data.get("version", "")),
            started_at=datetime.fromisoformat(data["started_at"]),
            last_heartbeat=datetime.fromisoformat(data["last_heartbeat"]),
            lease=float(data["lease"]),
            stopped_at=datetime.fromisoformat(stopped) if stopped else None,
        )

    def expired_for(self, now: datetime, retention: float = NODE_RETENTION) -> bool:
        """True when the record is older than ``retention`` past the node's end (stopped or
        dead): a store prunes such records at a heartbeat."""
        end = self.stopped_at or self.expires_at
        return (now - end).total_seconds() > retention
