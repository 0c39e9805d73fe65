"""The table of the SQL store.

One row per task:

================  =========================  =================================================
column            type                       meaning
================  =========================  =================================================
``id``            VARCHAR(191), primary key  the task id
``next_run_time`` DOUBLE PRECISION, NULL     POSIX timestamp (seconds, UTC) of the next run;
                  (indexed)                  ``NULL`` while the task is paused
``payload``       BLOB / BYTEA               the task's state, encoded by the serializer
``format_version``SMALLINT                   version of this row layout (:data:`FORMAT_VERSION`)
``broken``        TEXT, NULL                 why the payload cannot be restored; such rows are
                                             kept and skipped until the store restarts
``claimed_by``    VARCHAR(64), NULL          the store instance processing this due task
``claimed_until`` DOUBLE PRECISION, NULL     when that claim lapses (POSIX timestamp)
================  =========================  =================================================
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["FORMAT_VERSION", "REQUIRED_COLUMNS", "build_table"]

#: Version of the row layout; bumped (with migration notes in the README) when it changes.
FORMAT_VERSION = 1

REQUIRED_COLUMNS = frozenset(
    {"id", "next_run_time", "payload", "format_version", "broken", "claimed_by", "claimed_until"}
)


def build_table(name: str, metadata: sa.MetaData) -> sa.Table:
    """The store's table named ``name`` in ``metadata`` (whose schema it takes)."""
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Unicode(191), primary_key=True),
        sa.Column("next_run_time", sa.Double(), nullable=True, index=True),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("format_version", sa.SmallInteger(), nullable=False),
        sa.Column("broken", sa.UnicodeText(), nullable=True),
        sa.Column("claimed_by", sa.Unicode(64), nullable=True),
        sa.Column("claimed_until", sa.Double(), nullable=True),
    )
