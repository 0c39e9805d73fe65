"""Every ```python block of the trigger docs runs standalone and its assertions hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks() -> list[tuple[str, int, str]]:
    found = []
    for name in ("triggers.md", "writing-a-trigger-plugin.md"):
        text = (DOCS / name).read_text()
        for match in BLOCK.finditer(text):
            line = text[: match.start()].count("\n") + 1
            found.append((name, line, match.group(1)))
    return found


@pytest.mark.parametrize(("name", "line", "code"), blocks(), ids=lambda v: str(v)[:30])
def test_doc_block_runs(name: str, line: int, code: str) -> None:
    namespace: dict[str, object] = {"__name__": f"docs_{Path(name).stem}_{line}"}
    exec(compile(code, f"{name}:{line}", "exec"), namespace)
