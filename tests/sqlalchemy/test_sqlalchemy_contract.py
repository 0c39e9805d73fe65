"""The store contract of :mod:`asyncz.testing`, on a SQLite file and on PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from asyncz.stores.base import BaseStore
from asyncz.testing import StoreContract
from asyncz_sqlalchemy import SQLAlchemyStore


def table_name(namespace: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", namespace.lower())


class _SQLContract(StoreContract):
    url: str

    def make_store(self) -> BaseStore:
        return SQLAlchemyStore(database=self.url, tablename=table_name(self.namespace))

    async def overwrite_payload(self, store: BaseStore, task_id: str, payload: bytes) -> None:
        assert isinstance(store, SQLAlchemyStore)
        table = store.table
        async with store.engine.begin() as conn:
            await conn.execute(
                sa.update(table).where(table.c.id == task_id).values(payload=payload)
            )


class TestSQLiteContract(_SQLContract):
    @pytest.fixture(autouse=True)
    def _database(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path / 'contract.db'}"


@pytest.mark.postgres
class TestPostgresContract(_SQLContract):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_url: str) -> None:
        self.url = postgres_url
