"""The store contract on the file store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from asyncz.stores.base import BaseStore
from asyncz.stores.file import FileStore, file_name
from asyncz.testing import StoreContract


class TestFileStoreContract(StoreContract):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.root = tmp_path

    def make_store(self) -> BaseStore:
        return FileStore(self.root / self.namespace)

    def overwrite_payload(self, store: BaseStore, task_id: str, payload: bytes) -> None:
        assert isinstance(store, FileStore)
        path = store.tasks_dir / file_name(task_id)
        header = path.read_bytes().partition(b"\n")[0]
        temp = path.with_name(".corrupting")
        temp.write_bytes(header + b"\n" + payload)
        os.replace(temp, path)
