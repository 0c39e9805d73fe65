"""asyncz-sqlalchemy: a SQL store for asyncz (SQLite and PostgreSQL, SQLAlchemy 2 async).

``SQLAlchemyStore(database="sqlite:///jobs.db")`` or, from configuration alone,
``{"type": "sqlalchemy", "database": "postgresql://user@host/db"}`` (aliases ``sqlalchemy``,
``sqlite`` and ``postgresql``).
"""

from __future__ import annotations

from asyncz_sqlalchemy.schema import FORMAT_VERSION, build_runs_table, build_table
from asyncz_sqlalchemy.store import SQLAlchemyStore, async_url

__all__ = ["FORMAT_VERSION", "SQLAlchemyStore", "async_url", "build_runs_table", "build_table"]
