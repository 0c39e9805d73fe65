"""The tables of the SQL store.

One row per task:

================  =========================  =================================================
column            type                       meaning
================  =========================  =================================================
``id``            VARCHAR(191), primary key  the task id
``next_run_time`` DOUBLE PRECISION, NULL     POSIX timestamp (seconds, UTC) of the next run;
                  (indexed)                  ``NULL`` while the task is paused
``payload``       BLOB / BYTEA               the task's state, encoded by the serializer
``format_version``SMALLINT                   version of the payload layout
                                             (:data:`FORMAT_VERSION`)
``broken``        TEXT, NULL                 why the payload cannot be restored; such rows are
                                             kept and skipped until the store restarts
``revision``      BIGINT, default 1          moves at every write of the task (the fencing
                                             token of claims, the compare-and-set of updates)
``lease_owner``   VARCHAR(191), NULL         the node (scheduler identity) holding the task
``lease_until``   DOUBLE PRECISION, NULL     when that claim lapses (POSIX timestamp)
``due_at``        DOUBLE PRECISION, NULL     when a node should next look at the task:
                  (indexed)                  ``next_run_time``, or ``lease_until`` while
                                             claimed (so an expired claim is simply due)
================  =========================  =================================================

and one row per node (scheduler instance) in ``<tablename>_nodes``: ``identity`` (primary
key), ``ends_at`` (POSIX timestamp when the node stopped or its lease lapsed; records older
than :data:`asyncz.nodes.NODE_RETENTION` past it are pruned) and ``info`` (the JSON of
:meth:`asyncz.nodes.NodeInfo.to_dict`).

Run history (one row per :class:`asyncz.tasks.runs.RunRecord`, never updated) lives in
``<tablename>_runs``: a column per record field (times as POSIX seconds, ``DOUBLE
PRECISION``), plus ``seq`` (an identity primary key: insertion order, the tie-break of equal
times; a record may be kept twice) and ``at``, the record's time (``finished_at``, else
``submitted_at``, else ``scheduled_run_time``: history is ordered by it). Indexes
``(task_id, at DESC, seq DESC)`` (a task's newest records, the per-task retention) and
``(at, seq)`` (every task's newest, retention by age).
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = [
    "COORDINATION_COLUMNS",
    "FORMAT_VERSION",
    "OBSOLETE_COLUMNS",
    "REQUIRED_COLUMNS",
    "RUN_TIME_FIELDS",
    "build_nodes_table",
    "build_runs_table",
    "build_table",
    "migrate",
]

#: Version of the payload layout; bumped (with migration notes in the README) when it changes.
FORMAT_VERSION = 1

#: Columns without which the table cannot be used (it belongs to something else).
REQUIRED_COLUMNS = frozenset({"id", "next_run_time", "payload", "format_version"})

#: Columns added to a table of an earlier version of the store when it starts.
COORDINATION_COLUMNS = ("broken", "revision", "lease_owner", "lease_until", "due_at")

#: Columns of an earlier version (its own claims), dropped by the same migration.
OBSOLETE_COLUMNS = ("claimed_by", "claimed_until")


def build_table(name: str, metadata: sa.MetaData) -> sa.Table:
    """The store's task table named ``name`` in ``metadata`` (whose schema it takes)."""
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Unicode(191), primary_key=True),
        sa.Column("next_run_time", sa.Double(), nullable=True, index=True),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("format_version", sa.SmallInteger(), nullable=False),
        sa.Column("broken", sa.UnicodeText(), nullable=True),
        sa.Column("revision", sa.BigInteger(), nullable=False, server_default=sa.text("1")),
        sa.Column("lease_owner", sa.Unicode(191), nullable=True),
        sa.Column("lease_until", sa.Double(), nullable=True),
        sa.Column("due_at", sa.Double(), nullable=True, index=True),
    )


def build_nodes_table(name: str, metadata: sa.MetaData) -> sa.Table:
    """The table of node records named ``name`` (by default the task table's name +
    ``_nodes``)."""
    return sa.Table(
        name,
        metadata,
        sa.Column("identity", sa.Unicode(191), primary_key=True),
        sa.Column("ends_at", sa.Double(), nullable=False),
        sa.Column("info", sa.UnicodeText(), nullable=False),
    )


#: The fields of a run record kept as POSIX seconds (``DOUBLE PRECISION``).
RUN_TIME_FIELDS = ("scheduled_run_time", "submitted_at", "started_at", "finished_at")


def build_runs_table(name: str, metadata: sa.MetaData) -> sa.Table:
    """The run history table named ``name`` (by default the task table's name + ``_runs``)."""
    seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: the rowid
    table = sa.Table(
        name,
        metadata,
        sa.Column("seq", seq, primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.Unicode(191), nullable=False),
        sa.Column("run_id", sa.Unicode(191), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("scheduled_run_time", sa.Double(), nullable=False),
        sa.Column("outcome", sa.Unicode(32), nullable=False),
        sa.Column("submitted_at", sa.Double(), nullable=True),
        sa.Column("started_at", sa.Double(), nullable=True),
        sa.Column("finished_at", sa.Double(), nullable=True),
        sa.Column("duration", sa.Double(), nullable=True),
        sa.Column("lateness", sa.Double(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("node", sa.UnicodeText(), nullable=True),
        sa.Column("executor", sa.UnicodeText(), nullable=True),
        sa.Column("source", sa.Unicode(32), nullable=False),
        sa.Column("error_type", sa.UnicodeText(), nullable=True),
        sa.Column("error_message", sa.UnicodeText(), nullable=True),
        sa.Column("traceback", sa.UnicodeText(), nullable=True),
        sa.Column("return_repr", sa.UnicodeText(), nullable=True),
        sa.Column("note", sa.UnicodeText(), nullable=True),
    )
    c = table.c
    sa.Index(_index_name(name, "task_at"), c.task_id, c.at.desc(), c.seq.desc())
    sa.Index(_index_name(name, "at"), c.at, c.seq)
    return table


def _index_name(table: str, suffix: str) -> str:
    """``ix_<table>_<suffix>``, shortened with a hash to PostgreSQL's 63 bytes."""
    name = f"ix_{table}_{suffix}"
    if len(name.encode()) <= 63:
        return name
    digest = hashlib.sha256(table.encode()).hexdigest()[:12]
    return f"ix_{table.encode()[:40].decode(errors='ignore')}_{digest}_{suffix}"


def migrate(conn: Connection, table: sa.Table) -> None:
    """Bring a table of an earlier version of the store to this one: add the coordination
    columns (``due_at`` starts as the next run time), drop the old claim columns."""
    inspector = sa.inspect(conn)
    columns = {c["name"] for c in inspector.get_columns(table.name, schema=table.schema)}
    missing = sorted(REQUIRED_COLUMNS - columns)
    if missing:
        raise RuntimeError(
            f"Table {table.fullname!r} exists but lacks the column(s) "
            f"{', '.join(missing)} that asyncz-sqlalchemy needs. It was probably created by "
            "another scheduler (Asyncz, APScheduler): see 'Migrating the table' in the "
            "asyncz-sqlalchemy README."
        )
    dialect = conn.dialect
    name = dialect.identifier_preparer.format_table(table)
    for column in COORDINATION_COLUMNS:
        if column not in columns:
            ddl = sa.schema.CreateColumn(table.c[column]).compile(dialect=dialect)
            conn.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN {ddl}")
    if "due_at" not in columns:
        conn.execute(sa.update(table).values(due_at=table.c.next_run_time))
        for index in table.indexes:
            index.create(conn, checkfirst=True)
    for column in OBSOLETE_COLUMNS:
        if column in columns:
            quoted = dialect.identifier_preparer.quote(column)
            conn.exec_driver_sql(f"ALTER TABLE {name} DROP COLUMN {quoted}")
